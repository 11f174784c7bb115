package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/reseal"
	"github.com/sendwerk/sendwerk/internal/secret"
)

const secretsUsage = `Usage: sendwerk secrets rotate [--dry-run]

Stored secrets: connector passwords and DKIM private keys, sealed under SENDWERK_SECRET_KEY.

rotate re-seals every stored secret under SENDWERK_SECRET_KEY, opening old ones with the keys
in SENDWERK_SECRET_KEY_PREVIOUS. Rotating the key:
  1. set SENDWERK_SECRET_KEY to a new key and add the old one to SENDWERK_SECRET_KEY_PREVIOUS,
     on every process, and restart them;
  2. run 'sendwerk secrets rotate' (safe beside running servers; run it again if it stops);
  3. when it reports everything under the current key, remove the old key from
     SENDWERK_SECRET_KEY_PREVIOUS.
--dry-run opens every secret that would be re-sealed, to prove the keys are right, and writes
nothing. Exit status: 0 done, 1 some secrets open with no configured key (listed), 2 usage.
`

// runSecrets is `sendwerk secrets …`; its only subcommand is rotate.
func runSecrets(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, secretsUsage)
		return 0
	case len(args) == 0 || args[0] != "rotate":
		if len(args) > 0 {
			fmt.Fprintf(stderr, "unknown secrets command %q\n\n", args[0])
		}
		fmt.Fprint(stderr, secretsUsage)
		return 2
	}
	fs := newFlagSet("secrets rotate", secretsUsage)
	dryRun := fs.Bool("dry-run", false, "open every secret that would be re-sealed; write nothing")
	if code, ok := parseCommandFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	cfg, err := config.LoadEnv()
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk: invalid configuration:\n%v\n", err)
		return 2
	}
	return rotateSecrets(ctx, cfg, *dryRun, stdout, stderr)
}

func rotateSecrets(ctx context.Context, cfg *config.Config, dryRun bool, stdout, stderr io.Writer) int {
	out := &adminOutput{stdout: stdout, stderr: stderr}
	if cfg.SecretKey == "" {
		// Development: the key serve generated in the data dir; never a new one.
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "secret-key"))
		if err != nil {
			fmt.Fprintf(stderr, "sendwerk secrets rotate: SENDWERK_SECRET_KEY is not set and the data dir holds no key (%v)\n", err)
			return 2
		}
		cfg.SecretKey = strings.TrimSpace(string(b))
	}
	box, err := secret.NewBox(cfg.SecretKey, cfg.PreviousSecretKeys...)
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk secrets rotate: SENDWERK_SECRET_KEY: %v\n", err)
		return 2
	}
	pool, closeDB, err := openAdminDatabase(ctx, cfg, out)
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk secrets rotate: %v\n", err)
		return 1
	}
	defer closeDB()
	verb := "re-sealed"
	if dryRun {
		verb = "to re-seal"
	}
	out.progress(fmt.Sprintf("current key id %s; %d previous key(s)", box.CurrentKeyID(), len(cfg.PreviousSecretKeys)))
	reports, err := reseal.Run(ctx, pool, box, &reseal.Options{DryRun: dryRun, OnBatchFunc: func(r reseal.Report) {
		out.progress(fmt.Sprintf("%s: %d %s so far", r.Column.Name, r.Resealed, verb))
	}})
	for _, r := range reports {
		fmt.Fprintf(stdout, "%s: %d %s, %d already under the current key, %d no configured key opens\n",
			r.Column.Name, r.Resealed, verb, r.Current, r.Failed)
		if r.Failed > 0 {
			fmt.Fprintf(stdout, "  cannot open (first %d): %s\n", len(r.FailedIDs), strings.Join(r.FailedIDs, ", "))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk secrets rotate: %v (run it again to resume)\n", err)
		return 1
	}
	for _, r := range reports {
		if r.Failed > 0 {
			fmt.Fprintln(stderr, "sendwerk secrets rotate: some secrets open with no configured key: add the key that sealed them to SENDWERK_SECRET_KEY_PREVIOUS, or re-enter them (connector passwords) through the API")
			return 1
		}
	}
	if dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was written")
	} else {
		fmt.Fprintln(stdout, "every stored secret is sealed under the current key; earlier keys may leave SENDWERK_SECRET_KEY_PREVIOUS")
	}
	return 0
}
