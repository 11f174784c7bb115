#!/usr/bin/env bash
# Installs the system packages Sendwerk's development loop and tests need, when missing.
# Debian/Ubuntu only; elsewhere it says what to install.
set -euo pipefail

have_postgres() {
	command -v initdb >/dev/null && command -v postgres >/dev/null && return 0
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
# The README's curl examples are tested as written: they need curl and jq.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: system packages present"
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "setup: please install: ${missing[*]} (for PostgreSQL: the server binaries initdb and postgres)" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
