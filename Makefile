# Sendwerk developer loop. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
SQLC := $(GO) tool -modfile=tools/go.mod sqlc
GOLANGCI := $(GO) tool -modfile=tools/lint/go.mod golangci-lint
OAPI := $(GO) tool oapi-codegen
TS := clients/ts
# The web components (clients/elements) compile the TypeScript client from clients/ts/src.
ELEMENTS := clients/elements
# The /docs viewer (Redoc, pinned in clients/ts/package.json) is copied from node_modules into
# the binary's embedded assets: no CDN at run time.
DOCS_ASSETS := internal/httpapi/docs
# The /dev/elements demo (development only) embeds the elements' self-contained bundle.
DEV_ELEMENTS := internal/httpapi/develements
GENERATED := api/api.gen.go clients/go/client.gen.go internal/store/dbsqlc $(TS)/src/schema.ts $(DOCS_ASSETS)/redoc.standalone.js $(DEV_ELEMENTS)/sendwerk-elements.js

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install what a fresh Debian machine lacks (PostgreSQL, Postfix, swaks and its TLS modules, …), verify each tool's capabilities, fetch modules
	@bash scripts/setup.sh
	$(GO) mod download
	cd tools && $(GO) mod download
	cd tools/lint && $(GO) mod download
	cd $(TS) && npm ci --no-audit --no-fund
	cd $(ELEMENTS) && npm ci --no-audit --no-fund

# Node dependencies, installed when missing or when the lock file changed.
$(TS)/node_modules/.package-lock.json: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund
$(ELEMENTS)/node_modules/.package-lock.json: $(ELEMENTS)/package.json $(ELEMENTS)/package-lock.json $(TS)/node_modules/.package-lock.json
	cd $(ELEMENTS) && npm ci --no-audit --no-fund

.PHONY: generate
generate: $(TS)/node_modules/.package-lock.json $(ELEMENTS)/node_modules/.package-lock.json ## regenerate server, clients and query code from openapi.yaml and db/; vendor the /docs viewer; bundle the /dev/elements demo
	$(OAPI) -config api/config.yaml openapi.yaml
	$(OAPI) -config clients/go/config.yaml openapi.yaml
	$(SQLC) generate
	cd $(TS) && npm run --silent generate
	@# The bundle's one remote reference, Redocly's footer logo, becomes an empty image: the page loads nothing from elsewhere.
	sed 's#https://cdn\.redoc\.ly/redoc/logo-mini\.svg#data:,#' $(TS)/node_modules/redoc/bundles/redoc.standalone.js > $(DOCS_ASSETS)/redoc.standalone.js
	cp $(TS)/node_modules/redoc/bundles/redoc.standalone.js.LICENSE.txt $(DOCS_ASSETS)/
	cd $(ELEMENTS) && npm run --silent build
	cp $(ELEMENTS)/dist/sendwerk-elements.js $(DEV_ELEMENTS)/

.PHONY: verify
verify: generate ## fail when generated code is stale or go.mod is untidy
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated code is stale; run 'make generate' and commit:"; git status --porcelain -- $(GENERATED); exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...

.PHONY: lint
lint: $(TS)/node_modules/.package-lock.json ## golangci-lint (.golangci.yml, pinned in tools/lint) and the OpenAPI linter (redocly.yaml)
	$(GOLANGCI) run ./...
	cd $(TS) && npm run --silent lint:openapi

.PHONY: test
test: test-ts test-ui ## run all tests against real PostgreSQL, SMTP and DNS servers started by the tests, then the short chaos run
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) chaos CHAOS_QUICK=1

.PHONY: test-ts
test-ts: $(TS)/node_modules/.package-lock.json ## the TypeScript client's tests (vitest) against a real `sendwerk serve`
	cd $(TS) && npm run --silent typecheck && npm test

.PHONY: test-ui
test-ui: $(ELEMENTS)/node_modules/.package-lock.json ## the web components in Debian's Chromium against a real `sendwerk serve`, SMTP and DNS; screenshots in clients/elements/test-results
	cd $(ELEMENTS) && npm run --silent typecheck && npm test

.PHONY: test-race
test-race: ## the tests with the race detector
	$(GO) test -race -count=1 -timeout 30m ./...

.PHONY: bench
bench: ## benchmark against pgbench and Postfix on loopback (root; three full runs ~25 min, BENCH_RUNS=1 one run, BENCH_QUICK=1 a smoke run): tables, min/median/max summary + bench/results.json
	$(GO) build -o bin/sendwerk ./cmd/sendwerk
	$(GO) run ./bench -bin bin/sendwerk $(if $(filter 1,$(BENCH_QUICK)),-quick) $(if $(BENCH_RUNS),-runs $(BENCH_RUNS))

.PHONY: chaos
chaos: ## fault injection against real `sendwerk serve` processes: kill -9, PostgreSQL restarts, SIGTERM, upstream faults (~8 min; CHAOS_QUICK=1: ~3 min)
	$(GO) build -o bin/sendwerk ./cmd/sendwerk
	$(GO) run ./chaos -bin bin/sendwerk $(if $(CHAOS_QUICK),-quick)

.PHONY: build
build: ## build bin/sendwerk
	$(GO) build -o bin/sendwerk ./cmd/sendwerk

.PHONY: run
run: ## serve on localhost:8080 with the development inbox at /dev/inbox (embedded PostgreSQL under .data/ unless DATABASE_URL is set)
	$(GO) run ./cmd/sendwerk serve
