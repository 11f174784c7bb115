#!/usr/bin/env bash
# Quickstart: as the operator, create a tenant and an API key; then call the API as the
# tenant and read a problem document.
#
#   SENDWERK_URL          where Sendwerk serves (default http://localhost:8080, as `make run`)
#   SENDWERK_ADMIN_TOKEN  the operator's token (default: the contents of .data/admin-token)
#   TENANT_NAME           the tenant to create (default "Acme GmbH")
#
# Needs only curl and jq. Prints each step; ends with the export line for the other scripts.
set -euo pipefail
SENDWERK_ADMIN_TOKEN=${SENDWERK_ADMIN_TOKEN:-$(cat .data/admin-token 2>/dev/null || true)}
if [ -z "$SENDWERK_ADMIN_TOKEN" ]; then
	echo "set SENDWERK_ADMIN_TOKEN, or run from the directory holding .data/admin-token (make run prints it)" >&2
	exit 2
fi
. "$(dirname "$0")/lib.sh"

step "Is the server up? GET /readyz"
curl -sSf "$SENDWERK_URL/readyz" | jq -c .

step "As the operator: create a tenant (POST /v1/tenants)"
tenant=$(api POST /v1/tenants "$SENDWERK_ADMIN_TOKEN" "$(jq -nc --arg name "${TENANT_NAME:-Acme GmbH}" '{name: $name, monthly_quota: 100000}')")
echo "$tenant" | jq '{id, name, monthly_quota}'
tenant_id=$(echo "$tenant" | jq -r .id)

step "Give it an API key (POST /v1/tenants/$tenant_id/api-keys); the secret is shown once"
key=$(api POST "/v1/tenants/$tenant_id/api-keys" "$SENDWERK_ADMIN_TOKEN" '{"name": "backend", "scopes": ["messages:send", "read", "manage"]}')
echo "$key" | jq '{id, prefix, scopes, status}'
api_key=$(echo "$key" | jq -r .secret)

step "As the tenant: who am I? (GET /v1/me)"
api GET /v1/me "$api_key" | jq '{tenant: .tenant.name, key: .api_key.name, scopes: .api_key.scopes}'

step "As the tenant: a narrower key, read-only, for a dashboard (POST /v1/api-keys)"
api POST /v1/api-keys "$api_key" '{"name": "dashboard", "scopes": ["read"]}' | jq '{id, name, scopes}'

step "Errors are problem documents; branch on .type (POST /v1/api-keys with bad input)"
curl -sS -X POST "$SENDWERK_URL/v1/api-keys" -H "Authorization: Bearer $api_key" \
	-H 'Content-Type: application/json' -d '{"scopes": ["fly"]}' | jq '{status, type, errors}'

step "Lists are paginated: GET /v1/api-keys?limit=1, then follow next_cursor"
cursor=""
while :; do
	page=$(api GET "/v1/api-keys?limit=1${cursor:+&cursor=$cursor}" "$api_key")
	echo "$page" | jq -c '.items[] | {id, name}'
	cursor=$(echo "$page" | jq -r '.next_cursor // empty')
	[ -n "$cursor" ] || break
done

step "Done. For the other scripts:"
echo "export SENDWERK_API_KEY=$api_key"
