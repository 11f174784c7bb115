package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

const dnsUsage = `Usage:
  sendwerk dns spf --ip IP (--domain DOMAIN | --sender ADDRESS) [--helo NAME] [--dns HOST:PORT[,HOST:PORT]] [--timeout D]

Evaluates the SPF record (RFC 7208 check_host) for a client IP and prints the result,
explanation, DNS lookup counts and the trace of every query as JSON. The exit status is 0
whenever the evaluation completed, whatever its result, and 2 for usage errors.
`

// runDNS implements "sendwerk dns …"; operators use it to see why a domain's SPF
// record does or does not authorise an address, exactly as the domain checks see it.
func runDNS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dnsUsage)
		return 2
	}
	switch args[0] {
	case "spf":
		return runDNSSPF(ctx, args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, dnsUsage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown dns command %q\n\n%s", args[0], dnsUsage)
	return 2
}

// spfFlags are the options of "sendwerk dns spf".
type spfFlags struct {
	domain, ip, sender, helo, servers string
	timeout                           time.Duration
}

func runDNSSPF(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code := parseSPFFlags(args, stdout, stderr)
	if f == nil {
		return code
	}
	ip := net.ParseIP(f.ip)
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: splitServers(f.servers), Timeout: f.timeout})
	res := dnscheck.NewSPFEvaluator(resolver).CheckHost(ctx, ip, f.domain, f.sender, cmp.Or(f.helo, f.domain))
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "error writing result: %v\n", err)
		return 1
	}
	return 0
}

// parseSPFFlags returns nil and the exit code when the command should stop.
func parseSPFFlags(args []string, stdout, stderr io.Writer) (*spfFlags, int) {
	f := &spfFlags{}
	fs := newFlagSet("dns spf", dnsUsage)
	fs.StringVar(&f.domain, "domain", "", "domain whose SPF record is evaluated (default: the sender's domain)")
	fs.StringVar(&f.ip, "ip", "", "client IP address to evaluate (required)")
	fs.StringVar(&f.sender, "sender", "", "MAIL FROM address (default: postmaster@<helo or domain>)")
	fs.StringVar(&f.helo, "helo", "", "HELO/EHLO name (default: the domain)")
	fs.StringVar(&f.servers, "dns", "", "DNS servers to ask, host:port, comma-separated (default: the system's resolvers)")
	fs.DurationVar(&f.timeout, "timeout", dnscheck.DefaultTimeout, "wait for one DNS answer")
	if code, ok := parseCommandFlags(fs, args, stdout, stderr); !ok {
		return nil, code
	}
	if msg := f.problem(); msg != "" {
		fmt.Fprintf(stderr, "%s\n\n%s", msg, dnsUsage)
		return nil, 2
	}
	return f, 0
}

func (f *spfFlags) problem() string {
	switch {
	case f.ip == "":
		return "--ip is required"
	case net.ParseIP(f.ip) == nil:
		return fmt.Sprintf("--ip %q is not an IP address", f.ip)
	case f.domain == "" && !strings.Contains(f.sender, "@"):
		return "--domain or a --sender address is required"
	case f.timeout <= 0:
		return "--timeout must be positive"
	}
	return ""
}

// splitServers accepts "host", "host:port" and comma-separated lists; a missing
// port means 53.
func splitServers(s string) []string {
	var out []string
	for _, srv := range strings.Split(s, ",") {
		srv = strings.TrimSpace(srv)
		if srv == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(srv); err != nil {
			srv = net.JoinHostPort(strings.Trim(srv, "[]"), "53")
		}
		out = append(out, srv)
	}
	return out
}
