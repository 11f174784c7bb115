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
  sendwerk admin …          operator tools: create tenants and API keys, list domains due for checks
  sendwerk dns spf …        evaluate a domain's SPF record (see sendwerk dns spf -h)
  sendwerk secrets rotate   re-seal stored secrets under the current SENDWERK_SECRET_KEY (--dry-run)
  sendwerk help             show this text

Configuration comes from SENDWERK_* environment variables; see 'sendwerk config'.
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
		return runServe(ctx, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, stdout, stderr)
	case "config":
		printConfigTable(stdout)
		return 0
	case "dns":
		return runDNS(ctx, args[1:], stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr)
	case "secrets":
		return runSecrets(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}
