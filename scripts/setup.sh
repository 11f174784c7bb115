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
# make bench runs pgbench beside Sendwerk (Debian ships it with the server, via postgresql-contrib).
command -v pgbench >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || missing+=(postgresql-contrib)
# The README's curl examples are tested as written: they need curl and jq.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
# The TypeScript client (clients/ts) is generated, built and tested with Node.js and npm;
# the OpenAPI linter and the /docs viewer come from its npm dependencies.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The /docs page is tested in headless Chromium (Debian's, never one downloaded by npm).
command -v chromium >/dev/null || missing+=(chromium)
# Interoperability tests run real mail software nobody here wrote: Postfix with Cyrus SASL
# (sasldb) and swaks as a client.
command -v postfix >/dev/null || missing+=(postfix)
command -v saslpasswd2 >/dev/null || missing+=(sasl2-bin)
compgen -G '/usr/lib/*/sasl2/libsasldb.so*' >/dev/null || missing+=(libsasl2-modules-db)
compgen -G '/usr/lib/*/sasl2/libplain.so*' >/dev/null || missing+=(libsasl2-modules)
command -v swaks >/dev/null || missing+=(swaks)
# DKIM signatures are verified by verifiers that did not sign them: dkimpy (with PyNaCl for
# ed25519-sha256, imported from Debian's own python3) and OpenDKIM's opendkim-testmsg, which
# reads keys through the system resolver and so runs in a private network namespace (ip).
/usr/bin/python3 -c 'import dkim, nacl.signing' 2>/dev/null || missing+=(python3-dkim python3-nacl)
command -v opendkim-testmsg >/dev/null || missing+=(opendkim-tools)
command -v ip >/dev/null || missing+=(iproute2)
# Key-record variants are served by a real authoritative server (Knot DNS), and delegated
# _domainkey sub-zones resolve through a real recursive resolver (unbound with stub zones).
command -v knotd >/dev/null || missing+=(knot)
command -v unbound >/dev/null || missing+=(unbound)
# deploy/sendwerk.service is checked by systemd's own verifier (systemd-analyze verify and
# security --offline), which works without systemd running as PID 1.
command -v systemd-analyze >/dev/null || missing+=(systemd)

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
# Postfix asks how to configure the machine's own mail system; the tests use private
# instances, so the machine's stays unconfigured.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
