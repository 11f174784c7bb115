// Command sendwerk is the one Sendwerk binary: the API server, migrations, and operator tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `sendwerk — a send connector for transactional e-mail

Usage:
  sendwerk serve            run the API server and background workers
  sendwerk migrate          apply database migrations and exit
  sendwerk config           print the configuration variables (markdown table)
  sendwerk admin …          operator tools: tenants, API keys, domains due for checks
  sendwerk dns spf …        evaluate a domain's SPF record
  sendwerk secrets rotate   re-seal stored secrets under the current SENDWERK_SECRET_KEY
  sendwerk version          print the version, commit and Go version (also --version)
  sendwerk help             show this text

Every command takes --help. Configuration comes from SENDWERK_* environment variables;
see 'sendwerk config'.
`

const serveUsage = `Usage: sendwerk serve

Runs the REST API, the SMTP relay host and the background workers until interrupted.
Without DATABASE_URL it starts an embedded PostgreSQL under SENDWERK_DATA_DIR; in
development it also runs a mail catcher and a DNS server for *.test domains (see the
banner). Configuration comes from SENDWERK_* environment variables ('sendwerk config').
`

const migrateUsage = `Usage: sendwerk migrate

Applies the database migrations to DATABASE_URL (or the embedded development database)
and exits. 'sendwerk serve' does the same at start unless SENDWERK_AUTO_MIGRATE=false.
`

const configUsage = `Usage: sendwerk config

Prints every configuration variable with its default and meaning, as a markdown table.
`

const versionUsage = `Usage: sendwerk version

Prints the module version, the commit it was built from and the Go version.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runPlain(args, serveUsage, stdout, stderr, func() int { return runServe(ctx, stdout, stderr) })
	case "migrate":
		return runPlain(args, migrateUsage, stdout, stderr, func() int { return runMigrate(ctx, stdout, stderr) })
	case "config":
		return runPlain(args, configUsage, stdout, stderr, func() int { printConfigTable(stdout); return 0 })
	case "version", "-version", "--version", "-v":
		return runPlain(args, versionUsage, stdout, stderr, func() int { printVersion(stdout); return 0 })
	case "dns":
		return runDNS(ctx, args[1:], stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr)
	case "secrets":
		return runSecrets(ctx, args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		return runHelp(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}

// runPlain runs a command that takes no arguments but --help.
func runPlain(args []string, text string, stdout, stderr io.Writer, body func() int) int {
	fs := newFlagSet(args[0], text)
	if code, ok := parseCommandFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	return body()
}

// runHelp answers `sendwerk help [command …]` with that command's help.
func runHelp(ctx context.Context, topic []string, stdout, stderr io.Writer) int {
	if len(topic) == 0 || isHelp(topic[0]) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	return run(ctx, append(topic, "--help"), stdout, stderr)
}
