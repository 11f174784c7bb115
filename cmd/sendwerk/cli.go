package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Every command follows one rule, like git, River's CLI and the go tool: --help (-h, -help)
// prints the command's usage to stdout and exits 0 before anything is opened, bound or
// created; a usage error prints the message and the usage to stderr and exits 2.

// newFlagSet returns a flag set for command whose usage is text plus the options, if any.
func newFlagSet(command, text string) *flag.FlagSet {
	fs := flag.NewFlagSet("sendwerk "+command, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprint(fs.Output(), "\nOptions:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseCommandFlags parses args; ok is false when the command must stop now with code:
// 0 after printing help to stdout, 2 after printing a usage error to stderr. Positional
// arguments left over are a usage error (usually a forgotten value or `--`).
func parseCommandFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var msg bytes.Buffer
	fs.SetOutput(&msg) // the flag package prints the error and usage itself; we route it
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	case err != nil:
		_, _ = stderr.Write(msg.Bytes())
		return 2, false
	case fs.NArg() > 0:
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	fs.SetOutput(stderr)
	return 0, true
}

// isHelp reports whether arg asks for help rather than naming a subcommand.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// printVersion prints what debug.ReadBuildInfo knows: the module version (a tag for
// `go install …@v1.2.3`, "(devel)" for a build from a checkout), the VCS commit and its
// date (Go stamps no build time; the commit's is the reproducible one), whether the tree had local changes, and the Go version.
func printVersion(w io.Writer) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "sendwerk (no build information)")
		return
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	parts := []string{"sendwerk " + version}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (modified)"
		}
		parts = append(parts, "commit "+rev)
	} else {
		parts = append(parts, "commit unknown")
	}
	if at := settings["vcs.time"]; at != "" {
		parts = append(parts, "committed "+at)
	}
	parts = append(parts, info.GoVersion)
	fmt.Fprintln(w, strings.Join(parts, ", "))
}
