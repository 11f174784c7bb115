#!/usr/bin/env bash
# Installs the system packages Sendwerk's development loop and tests need, when missing, and
# then verifies that each external tool can do what the tests ask of it (a tool can be
# present without a capability: swaks without its Perl TLS modules cannot STARTTLS).
# Debian/Ubuntu only; elsewhere it says what to install.
set -euo pipefail

# Each check is "package<TAB>what the tests need<TAB>a shell test that passes when it is there".
checks=(
	"postgresql	initdb and postgres (tests start their own clusters)	command -v initdb && command -v postgres || compgen -G '/usr/lib/postgresql/*/bin/initdb'"
	# make bench runs pgbench beside Sendwerk (Debian ships it with the server, via postgresql-contrib).
	"postgresql-contrib	pgbench (make bench)	command -v pgbench || compgen -G '/usr/lib/postgresql/*/bin/pgbench'"
	# The README's curl examples are tested as written: they need curl and jq.
	"curl	curl (README examples)	command -v curl"
	"jq	jq (README examples)	command -v jq"
	# The TypeScript client (clients/ts) is generated, built and tested with Node.js and npm;
	# the OpenAPI linter and the /docs viewer come from its npm dependencies.
	"nodejs	node (TypeScript client)	command -v node"
	"npm	npm (TypeScript client)	command -v npm"
	# The /docs page is tested in headless Chromium (Debian's, never one downloaded by npm).
	"chromium	chromium (the /docs page test)	command -v chromium"
	# Interoperability tests run real mail software nobody here wrote: Postfix with Cyrus SASL
	# (sasldb) as upstream and relay peer, its smtp-sink in the benchmark, and swaks as a client.
	"postfix	postfix with smtp-sink	command -v postfix && command -v postconf && command -v smtp-sink"
	"postfix	Postfix built with Cyrus SASL server support	postconf -a | grep -qx cyrus"
	"sasl2-bin	saslpasswd2 (Postfix test users)	command -v saslpasswd2"
	"libsasl2-modules-db	the Cyrus SASL sasldb plugin	compgen -G '/usr/lib/*/sasl2/libsasldb.so*'"
	"libsasl2-modules	the Cyrus SASL PLAIN and LOGIN plugins	compgen -G '/usr/lib/*/sasl2/libplain.so*' && compgen -G '/usr/lib/*/sasl2/liblogin.so*'"
	"swaks	swaks (relay tests)	command -v swaks"
	# swaks needs Perl modules for STARTTLS, implicit TLS and AUTH that --no-install-recommends
	# leaves out; without them it exits 10 with "TLS not available: requires Net::SSLeay".
	"libnet-ssleay-perl	Net::SSLeay (swaks TLS)	perl -MNet::SSLeay -e1"
	"libio-socket-ssl-perl	IO::Socket::SSL (swaks TLS)	perl -MIO::Socket::SSL -e1"
	"libauthen-sasl-perl	Authen::SASL (swaks AUTH)	perl -MAuthen::SASL -e1"
	"libnet-ssleay-perl	swaks --support reporting TLS	swaks --support 2>&1 | grep -q '^=== TLS supported'"
	"libauthen-sasl-perl	swaks --support reporting AUTH	swaks --support 2>&1 | grep -q '^=== Basic AUTH supported'"
	# deploy/sendwerk.service is checked by systemd's own verifier (systemd-analyze verify and
	# security --offline), which works without systemd running as PID 1.
	"systemd	systemd-analyze (the systemd unit test)	command -v systemd-analyze"
	# DKIM signatures are verified by verifiers that did not sign them: dkimpy (with PyNaCl for
	# ed25519-sha256, imported by Debian's own python3) and OpenDKIM's opendkim-testmsg, which
	# reads keys through the system resolver and so runs in a private network namespace (ip).
	"python3-dkim	dkimpy (DKIM verification tests)	/usr/bin/python3 -c 'import dkim'"
	"python3-nacl	PyNaCl (dkimpy ed25519-sha256)	/usr/bin/python3 -c 'import nacl.signing'"
	"opendkim-tools	opendkim-testmsg (DKIM verification tests)	command -v opendkim-testmsg"
	"iproute2	ip (a private network namespace for opendkim-testmsg)	command -v ip"
	# Key-record variants are served by a real authoritative server (Knot DNS), and delegated
	# _domainkey sub-zones resolve through a real recursive resolver (unbound with stub zones).
	"knot	knotd and knotc (authoritative DNS tests)	command -v knotd && command -v knotc"
	"unbound	unbound (recursive DNS tests)	command -v unbound"
)

# failing prints "package<TAB>need" for every check that does not pass.
failing() {
	local c pkg need test
	for c in "${checks[@]}"; do
		IFS=$'\t' read -r pkg need test <<<"$c"
		bash -c "$test" >/dev/null 2>&1 || printf '%s\t%s\n' "$pkg" "$need"
	done
}

mapfile -t failed < <(failing)
if [ ${#failed[@]} -eq 0 ]; then
	echo "setup: system packages present and capable"
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${failed[@]}" | cut -f1 | sort -u)

if ! command -v apt-get >/dev/null; then
	echo "setup: please install: ${missing[*]} (for PostgreSQL: the server binaries initdb and postgres)" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
apt_install() {
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}
# installable reports whether apt knows a candidate for every package without refreshing
# its lists (a fresh machine may have none, or lists too old to name today's versions).
installable() {
	local p
	for p in "$@"; do
		apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' || return 1
	done
}

echo "setup: installing ${missing[*]}"
# Postfix asks how to configure the machine's own mail system; the tests use private
# instances, so the machine's stays unconfigured.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# apt-get update only when the lists cannot serve the install, and once more when an
# install from existing lists fails (their versions may have left the mirror).
if ! installable "${missing[@]}" || ! apt_install "${missing[@]}"; then
	$SUDO apt-get update -q
	apt_install "${missing[@]}"
fi

mapfile -t failed < <(failing)
if [ ${#failed[@]} -gt 0 ]; then
	for f in "${failed[@]}"; do
		IFS=$'\t' read -r pkg need <<<"$f"
		echo "setup: $need is still missing after installing; install the Debian package $pkg (or fix it) and run make setup again" >&2
	done
	exit 1
fi
echo "setup: system packages installed and capable"
