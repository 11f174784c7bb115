#!/usr/bin/env bash
# Domain verification: add a sender domain, print the DNS records to publish, then check
# them until the domain is verified.
#
#   domains.sh add example.com      add it and print its records (JSON and a zone-file snippet)
#   domains.sh check dom_…          check now; with WAIT=seconds, keep checking until verified
#   domains.sh records dom_…        print the records and their status again
#
#   SENDWERK_URL       where Sendwerk serves (default http://localhost:8080)
#   SENDWERK_API_KEY   a tenant key with `manage` (default: a demo tenant made with the admin token)
#   WAIT               for check: how long to keep checking (default 0: once)
#
# Needs only curl and jq. `check` exits 0 once the domain may send, 1 otherwise.
set -euo pipefail
usage() { sed -n '2,14p' "$0" >&2; exit 2; }
[ $# -eq 2 ] || usage
. "$(dirname "$0")/lib.sh"
ensure_api_key

records() {
	step "Records to publish (GET /v1/domains/$1/records)"
	api GET "/v1/domains/$1/records" "$SENDWERK_API_KEY" |
		jq -r '.records[] | "  \(.purpose) (\(.requirement)): \(.type) \(.fqdn)\n    \(.value)\n    status: \(.status)\(if .message then " - " + .message else "" end)"'
	step "The same as a zone-file snippet (?format=zone), ready to paste"
	curl -sSf "$SENDWERK_URL/v1/domains/$1/records?format=zone" -H "Authorization: Bearer $SENDWERK_API_KEY"
}

case $1 in
add)
	step "Add the sender domain $2 (POST /v1/domains)"
	domain=$(api POST /v1/domains "$SENDWERK_API_KEY" "$(jq -nc --arg d "$2" '{domain: $d}')")
	echo "$domain" | jq '{id, domain, domain_unicode, status, dkim_selector}'
	id=$(echo "$domain" | jq -r .id)
	records "$id"
	step "Publish these records at your DNS provider, then run:"
	echo "$0 check $id"
	;;
check)
	deadline=$(( $(date +%s) + ${WAIT:-0} ))
	while :; do
		step "Check $2 now (POST /v1/domains/$2/check)"
		out=$(mktemp)
		status=$(curl -sS -o "$out" -w '%{http_code}' -X POST "$SENDWERK_URL/v1/domains/$2/check" -H "Authorization: Bearer $SENDWERK_API_KEY")
		if [ "$status" = 429 ]; then
			echo "  checked moments ago; waiting as Retry-After asks"
			rm -f "$out"; sleep 2; continue
		fi
		[ "$status" = 200 ] || { jq . "$out" >&2; rm -f "$out"; exit 1; }
		jq -r '.check.results[] | "  \(.check): \(.status) (\(.code)) \(.message)"' "$out"
		jq '{status: .domain.status, send_allowed: .domain.send_allowed}' "$out"
		allowed=$(jq -r .domain.send_allowed "$out"); rm -f "$out"
		[ "$allowed" = true ] && { echo "$2 is verified: messages may be sent from it."; exit 0; }
		[ "$(date +%s)" -lt "$deadline" ] || { echo "not verified yet; publish the records and check again" >&2; exit 1; }
		sleep 3
	done
	;;
records) records "$2" ;;
*) usage ;;
esac
