#!/usr/bin/env bash
# Batch: send several messages in one request, read each one's outcome by index, then page
# through the message log with the batch's tag until every message is final (delivered,
# failed or cancelled), and say why the failed ones failed.
#
#   SENDWERK_URL       where Sendwerk serves (default http://localhost:8080)
#   SENDWERK_API_KEY   a tenant key with `messages:send` and `read` (default: a demo tenant)
#   TO                 comma-separated recipients, one message each (required)
#   FROM_EMAIL         the sender (default: the connector's default sender)
#   CONNECTOR_ID       the connector (default: the tenant's default connector)
#   SMTP_HOST, SMTP_PORT, SMTP_SECURITY   create a connector when the tenant has none
#   WAIT               how long to wait for delivery, in seconds (default 60)
#
# Needs only curl and jq. One message has a sender the tenant may not use, to show a
# per-message problem.
# Exits 0 when every accepted message is delivered, 1 when one failed or WAIT ran out.
set -euo pipefail
: "${TO:?set TO, comma-separated recipients}"
. "$(dirname "$0")/lib.sh"
ensure_api_key

ensure_connector

tag="batch-$(date +%s)-$RANDOM"
step "Send a batch (POST /v1/messages/batch): one message per recipient, plus one from a domain the tenant has not verified"
body=$(jq -nc --arg from "$FROM_EMAIL" --arg to "$TO" --arg connector "$CONNECTOR_ID" --arg tag "$tag" '
	{messages: ([$to | split(",")[] | {connector_id: $connector, from: $from, to: [.],
		subject: "Your weekly report", text: "Sent by examples/curl/batch.sh.", tags: [$tag]}]
		+ [{connector_id: $connector, from: "someone@unverified.example", to: [$to | split(",")[0]],
			subject: "Refused", text: "A sender the tenant may not use.", tags: [$tag]}])}')
result=$(api POST /v1/messages/batch "$SENDWERK_API_KEY" "$body")
echo "$result" | jq '{accepted, rejected}'
echo "$result" | jq -r '.items[] | if .id then "  #\(.index): accepted as \(.id)" else "  #\(.index): refused, \(.problem.type): \(.problem.detail)" end'
accepted=$(echo "$result" | jq -r .accepted)

step "Follow them in the message log (GET /v1/messages?tag=$tag, page by page) until every one is final"
deadline=$(( $(date +%s) + ${WAIT:-60} ))
while :; do
	cursor="" final=0 delivered=0 listed=0
	while :; do
		page=$(api GET "/v1/messages?tag=$tag&limit=2${cursor:+&cursor=$cursor}" "$SENDWERK_API_KEY")
		listed=$(( listed + $(echo "$page" | jq '.items | length') ))
		final=$(( final + $(echo "$page" | jq '[.items[] | select(.status == "delivered" or .status == "failed" or .status == "cancelled")] | length') ))
		delivered=$(( delivered + $(echo "$page" | jq '[.items[] | select(.status == "delivered")] | length') ))
		cursor=$(echo "$page" | jq -r '.next_cursor // empty')
		[ -n "$cursor" ] || break
	done
	echo "  $final of $listed final, $delivered delivered"
	[ "$final" -lt "$accepted" ] || break
	[ "$(date +%s)" -lt "$deadline" ] || { echo "not all final after ${WAIT:-60}s" >&2; exit 1; }
	sleep 1
done
log=$(api GET "/v1/messages?tag=$tag&limit=100" "$SENDWERK_API_KEY")
echo "$log" | jq -r '.items[] | "  \(.id)  \(.status)  \(.to | join(","))"'
if [ "$delivered" -lt "$accepted" ]; then
	step "Why the others did not arrive"
	echo "$log" | jq -r '.items[] | select(.status != "delivered")
		| "  \(.id) to \(.to | join(",")): \(.status): \(.status_reason // "no reason given")\(if .last_reply then " (upstream said \(.last_reply.code) \(.last_reply.text))" else "" end)"'
	exit 1
fi
