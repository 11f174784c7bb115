#!/usr/bin/env bash
# Shared by the curl examples (sourced, not run): where Sendwerk is, a step printer, an
# api() wrapper that shows problem documents, and ensure_api_key for a demo tenant.
# Needs only curl and jq.
SENDWERK_URL=${SENDWERK_URL:-http://localhost:8080}
step() { printf '\n== %s\n' "$*"; }
# api METHOD PATH TOKEN [JSON]: prints the response body; on an HTTP error it shows the
# problem document on stderr and fails.
api() {
	local out status args=(-sS -X "$1" "$SENDWERK_URL$2" -H "Authorization: Bearer $3")
	[ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data "$4")
	out=$(mktemp)
	status=$(curl "${args[@]}" -o "$out" -w '%{http_code}')
	if [ "$status" -ge 400 ]; then
		echo "$1 $2 answered $status:" >&2
		jq . "$out" >&2 || cat "$out" >&2
		rm -f "$out"
		return 1
	fi
	cat "$out"
	rm -f "$out"
}

# ensure_api_key sets SENDWERK_API_KEY, or makes a demo tenant and key with the admin token
# (SENDWERK_ADMIN_TOKEN, or .data/admin-token next to a `make run`).
ensure_api_key() {
	if [ -z "${SENDWERK_API_KEY:-}" ]; then
		SENDWERK_ADMIN_TOKEN=${SENDWERK_ADMIN_TOKEN:-$(cat .data/admin-token 2>/dev/null || true)}
		if [ -z "$SENDWERK_ADMIN_TOKEN" ]; then
			echo "set SENDWERK_API_KEY (see quickstart.sh), or SENDWERK_ADMIN_TOKEN / run next to .data/admin-token" >&2
			exit 2
		fi
		step "No SENDWERK_API_KEY: creating a demo tenant and key with the admin token"
		tenant_id=$(api POST /v1/tenants "$SENDWERK_ADMIN_TOKEN" '{"name": "curl examples"}' | jq -r .id)
		SENDWERK_API_KEY=$(api POST "/v1/tenants/$tenant_id/api-keys" "$SENDWERK_ADMIN_TOKEN" \
			'{"name": "curl examples", "scopes": ["messages:send", "read", "manage"]}' | jq -r .secret)
		echo "tenant $tenant_id, key ${SENDWERK_API_KEY:0:11}…"
	fi
}
