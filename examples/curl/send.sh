#!/usr/bin/env bash
# Send and poll: send one message, then follow its status and event timeline until it is
# delivered, failed or cancelled.
#
#   SENDWERK_URL       where Sendwerk serves (default http://localhost:8080)
#   SENDWERK_API_KEY   a tenant key with `messages:send` and `read` (default: a demo tenant)
#   TO                 the recipient (required)
#   FROM_EMAIL         the sender (default: the connector's default sender)
#   CONNECTOR_ID       the connector (default: the tenant's default connector)
#   SMTP_HOST, SMTP_PORT, SMTP_SECURITY   create a connector when the tenant has none
#   WAIT               how long to poll, in seconds (default 60)
#
# Needs only curl and jq. Exits 0 when the message is delivered.
set -euo pipefail
: "${TO:?set TO, the recipient}"
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

# SENDWERK_API_KEY, or a new demo tenant and key made with the admin token.
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

# The connector to send through: CONNECTOR_ID, else the tenant's default, else a new one
# from SMTP_HOST/SMTP_PORT/SMTP_SECURITY (see connectors.sh for one with a login).
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

step "Send a message (POST /v1/messages) with an Idempotency-Key: a retry with the same key cannot send twice"
idempotency_key="send-sh-$(date +%s)-$RANDOM"
body=$(jq -nc --arg from "$FROM_EMAIL" --arg to "$TO" --arg connector "$CONNECTOR_ID" '{
	connector_id: $connector, from: {email: $from, name: "Sendwerk example"}, to: [$to],
	subject: "Hello from send.sh", text: "This message was sent by examples/curl/send.sh.", tags: ["curl-example"]}')
accepted=$(curl -sS -X POST "$SENDWERK_URL/v1/messages" -H "Authorization: Bearer $SENDWERK_API_KEY" \
	-H 'Content-Type: application/json' -H "Idempotency-Key: $idempotency_key" --data "$body")
echo "$accepted" | jq .
id=$(echo "$accepted" | jq -r '.id // empty')
[ -n "$id" ] || exit 1

step "Sending it again with the same key returns the same message"
again=$(curl -sS -X POST "$SENDWERK_URL/v1/messages" -H "Authorization: Bearer $SENDWERK_API_KEY" \
	-H 'Content-Type: application/json' -H "Idempotency-Key: $idempotency_key" --data "$body" | jq -r .id)
echo "same id: $again"

step "Poll GET /v1/messages/$id until it is final"
deadline=$(( $(date +%s) + ${WAIT:-60} ))
last=""
while :; do
	message=$(api GET "/v1/messages/$id" "$SENDWERK_API_KEY")
	status=$(echo "$message" | jq -r .status)
	[ "$status" = "$last" ] || echo "  status: $status"
	last=$status
	case $status in delivered | failed | cancelled) break ;; esac
	[ "$(date +%s)" -lt "$deadline" ] || { echo "still $status after ${WAIT:-60}s" >&2; exit 1; }
	sleep 1
done

step "Its timeline"
echo "$message" | jq -r '.events[] | "  \(.at)  \(.type)  \(.data.reply.text // .data.reason // .data.error // "")"'
echo "$message" | jq '{id, status, attempts, last_reply, status_reason}'
[ "$status" = delivered ]
