# Sendwerk developer loop. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
SQLC := $(GO) tool -modfile=tools/go.mod sqlc
OAPI := $(GO) tool oapi-codegen
GENERATED := api/api.gen.go clients/go/client.gen.go internal/store/dbsqlc

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install what a fresh Debian machine lacks (PostgreSQL binaries) and fetch Go modules
	@bash scripts/setup.sh
	$(GO) mod download
	cd tools && $(GO) mod download

.PHONY: generate
generate: ## regenerate server, client and query code from openapi.yaml and db/
	$(OAPI) -config api/config.yaml openapi.yaml
	$(OAPI) -config clients/go/config.yaml openapi.yaml
	$(SQLC) generate

.PHONY: verify
verify: generate ## fail when generated code is stale or go.mod is untidy
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; git status --porcelain -- $(GENERATED); exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...

.PHONY: lint
lint: ## go vet, plus golangci-lint when it is installed
	$(GO) vet ./...
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; else echo "golangci-lint not installed; ran go vet only"; fi

.PHONY: test
test: ## run all tests against real PostgreSQL, SMTP and DNS servers started by the tests
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: test-race
test-race: ## the tests with the race detector
	$(GO) test -race -count=1 -timeout 30m ./...

.PHONY: build
build: ## build bin/sendwerk
	$(GO) build -o bin/sendwerk ./cmd/sendwerk

.PHONY: run
run: ## serve on localhost:8080 (embedded PostgreSQL under .data/ unless DATABASE_URL is set)
	$(GO) run ./cmd/sendwerk serve
