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
. "$(dirname "$0")/lib.sh"
ensure_api_key

ensure_connector

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
