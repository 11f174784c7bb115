package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runCLI runs the real binary (the test binary acting as main) in dir with a clean
// environment plus env. A command that has not ended after a minute is killed and fails the
// test (before start-up errors were reported first, a port conflict could hang serve).
func runCLI(t *testing.T, dir string, env map[string]string, args ...string) adminResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(filteredEnv(), runMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "sendwerk %v did not end within a minute; stderr:\n%s", args, stderr.String())
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return adminResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// everyCommand lists every command and subcommand of the binary.
func everyCommand() [][]string {
	cmds := [][]string{{"serve"}, {"migrate"}, {"config"}, {"version"}, {"dns"}, {"dns", "spf"}, {"admin"}, {"secrets"}, {"secrets", "rotate"}, {"help"}}
	var admin []string
	for name := range adminCommands {
		admin = append(admin, name)
	}
	sort.Strings(admin)
	for _, name := range admin {
		cmds = append(cmds, append([]string{"admin"}, strings.Fields(name)...))
	}
	return cmds
}

// TestHelpTouchesNothing runs every command with --help and -h in an empty directory, with
// the development defaults (embedded database under .data, fixed ports): each prints its
// usage once to stdout and exits 0, and the directory stays empty.
func TestHelpTouchesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, cmd := range everyCommand() {
		for _, flag := range []string{"--help", "-h"} {
			args := append(append([]string{}, cmd...), flag)
			r := runCLI(t, dir, nil, args...)
			require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
			require.Empty(t, r.stderr, "%v", args)
			require.Contains(t, r.stdout, "Usage", "%v", args)
			require.Equal(t, 1, strings.Count(r.stdout, "Usage"), "%v prints its help once:\n%s", args, r.stdout)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "%v created something", args)
		}
	}
}

// TestUnknownFlags: a flag a command does not know prints the message and the usage to
// stderr and exits 2, before anything is opened.
func TestUnknownFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, cmd := range everyCommand() {
		if cmd[0] == "help" || len(cmd) == 1 && (cmd[0] == "admin" || cmd[0] == "dns" || cmd[0] == "secrets") {
			continue // groups: the next word names a subcommand, not a flag
		}
		args := append(append([]string{}, cmd...), "--no-such-flag")
		r := runCLI(t, dir, nil, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stdout)
		require.Empty(t, r.stdout, "%v", args)
		require.Contains(t, r.stderr, "flag provided but not defined: -no-such-flag", "%v", args)
		require.Contains(t, r.stderr, "Usage", "%v", args)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, entries, "%v created something", args)
	}
	for _, args := range [][]string{{"bogus"}, {"admin", "bogus", "thing"}, {"dns", "bogus"}, {"admin"}, {"secrets"}, {"secrets", "bogus"}, {}} {
		r := runCLI(t, dir, nil, args...)
		require.Equal(t, 2, r.code, "%v", args)
		require.Empty(t, r.stdout, "%v", args)
		require.Contains(t, r.stderr, "Usage", "%v", args)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		r := runCLI(t, t.TempDir(), nil, arg)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, regexp.MustCompile(`^sendwerk \S+, commit \S+.*, go1\.\d+`), r.stdout)
	}
}
