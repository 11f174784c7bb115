#!/usr/bin/env bash
# Connector setup: test SMTP settings before saving, save them as a connector, test the saved
# connector, and send a test e-mail through it.
#
#   SENDWERK_URL       where Sendwerk serves (default http://localhost:8080)
#   SENDWERK_API_KEY   a tenant key with `manage` (default: a demo tenant made with the admin token)
#   SMTP_HOST          the tenant's SMTP server (required)
#   SMTP_PORT          default 587
#   SMTP_SECURITY      starttls (default), tls or none
#   SMTP_USERNAME, SMTP_PASSWORD   optional login; the password is write-only
#   FROM_EMAIL         the connector's default sender (required)
#   TEST_TO            where the test e-mail goes (required)
#
# Needs only curl and jq. Exits non-zero when the connection test fails.
set -euo pipefail
: "${SMTP_HOST:?set SMTP_HOST}" "${FROM_EMAIL:?set FROM_EMAIL}" "${TEST_TO:?set TEST_TO}"
. "$(dirname "$0")/lib.sh"
ensure_api_key

settings=$(jq -nc --arg host "$SMTP_HOST" --argjson port "${SMTP_PORT:-587}" --arg security "${SMTP_SECURITY:-starttls}" \
	--arg user "${SMTP_USERNAME:-}" --arg pass "${SMTP_PASSWORD:-}" --arg from "$FROM_EMAIL" '{
	name: "SMTP \($host)", kind: "smtp", default_sender: {email: $from},
	smtp: ({host: $host, port: $port, security: $security}
		+ (if $user != "" then {username: $user} else {} end)
		+ (if $pass != "" then {password: $pass} else {} end))}')

step "Test the settings before saving (POST /v1/connector-tests)"
test=$(api POST /v1/connector-tests "$SENDWERK_API_KEY" "$settings")
echo "$test" | jq -r '.steps[] | "  \(.name): \(.status) \(.detail)"'
echo "$test" | jq '{ok, code, message}'
if [ "$(echo "$test" | jq -r .ok)" != true ]; then
	echo "the connection test failed; fix the settings and run again" >&2
	exit 1
fi

step "Save them as a connector (POST /v1/connectors)"
connector=$(api POST /v1/connectors "$SENDWERK_API_KEY" "$settings")
echo "$connector" | jq '{id, name, kind, is_default, smtp: {host: .smtp.host, port: .smtp.port, security: .smtp.security, password_set: .smtp.password_set}, warnings}'
connector_id=$(echo "$connector" | jq -r .id)

step "Test the saved connector (POST /v1/connectors/$connector_id/test)"
api POST "/v1/connectors/$connector_id/test" "$SENDWERK_API_KEY" | jq '{ok, code, duration_ms, steps: [.steps[] | "\(.name): \(.status)"]}'

step "Send a test e-mail to $TEST_TO (POST /v1/connectors/$connector_id/test-email)"
mail=$(api POST "/v1/connectors/$connector_id/test-email" "$SENDWERK_API_KEY" "$(jq -nc --arg to "$TEST_TO" '{to: $to}')")
echo "$mail" | jq '{ok, from, to, reply, queue_id, message}'
[ "$(echo "$mail" | jq -r .ok)" = true ]

step "Done. Send through it with:"
echo "export SENDWERK_API_KEY=$SENDWERK_API_KEY CONNECTOR_ID=$connector_id"
