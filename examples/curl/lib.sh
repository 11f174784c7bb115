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

# ensure_connector sets CONNECTOR_ID and FROM_EMAIL for sending: CONNECTOR_ID, else the
# tenant's default connector, else a new one from SMTP_HOST/SMTP_PORT/SMTP_SECURITY.
ensure_connector() {
	# (See connectors.sh for a connector with a login.)
	if [ -z "${CONNECTOR_ID:-}" ]; then
		CONNECTOR_ID=$(api GET "/v1/connectors?limit=100" "$SENDWERK_API_KEY" | jq -r '[.items[] | select(.is_default)][0].id // empty')
	fi
	if [ -z "$CONNECTOR_ID" ]; then
		: "${SMTP_HOST:?the tenant has no connector: set CONNECTOR_ID, or SMTP_HOST (and SMTP_PORT, SMTP_SECURITY) to create one}"
		step "Create a connector to $SMTP_HOST (POST /v1/connectors)"
		CONNECTOR_ID=$(api POST /v1/connectors "$SENDWERK_API_KEY" "$(jq -nc --arg host "$SMTP_HOST" --argjson port "${SMTP_PORT:-587}" \
			--arg security "${SMTP_SECURITY:-starttls}" --arg from "${FROM_EMAIL:?set FROM_EMAIL (the default sender of the new connector)}" \
			'{name: "SMTP \($host)", kind: "smtp", smtp: {host: $host, port: $port, security: $security}, default_sender: {email: $from}}')" | jq -r .id)
		echo "connector $CONNECTOR_ID"
	fi
	# An smtp connector may send from its default sender without a verified domain.
	FROM_EMAIL=${FROM_EMAIL:-$(api GET "/v1/connectors/$CONNECTOR_ID" "$SENDWERK_API_KEY" | jq -r .default_sender.email)}
}
