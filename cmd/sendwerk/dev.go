package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/miekg/dns"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/devdns"
	"github.com/sendwerk/sendwerk/internal/devinbox"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

// devServices are the development mail catcher and DNS server: with them `make run`
// delivers mail a developer can see, from a domain under .test that verifies at once.
// Both are nil when off (always in production).
type devServices struct {
	inbox *devinbox.Inbox
	dns   *devdns.Server
}

// startDevServices starts what cfg turns on and points the platform relay and the
// domain checks at them when the operator set neither.
func startDevServices(cfg *config.Config, logger *slog.Logger) (*devServices, error) {
	d := &devServices{}
	if cfg.DevDNSAddr != "" {
		srv, err := devdns.Start(devdns.Config{Addr: cfg.DevDNSAddr, Forward: dnscheck.DefaultServers(), Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("SENDWERK_DEV_DNS_ADDR: %w", err)
		}
		d.dns = srv
		if len(cfg.DNSServers) == 0 {
			cfg.DNSServers = []string{srv.Addr()}
		}
	}
	if cfg.DevInboxAddr != "" {
		resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: cfg.DNSServers, Timeout: cfg.DNSTimeout})
		inbox, err := devinbox.Start(devinbox.Config{Addr: cfg.DevInboxAddr, Logger: logger,
			LookupTXT: func(ctx context.Context, name string) ([]string, error) { return devLookupTXT(ctx, resolver, name) }})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("SENDWERK_DEV_INBOX_ADDR: %w", err)
		}
		d.inbox = inbox
		if cfg.PlatformSMTPURL == "" {
			cfg.PlatformSMTPURL = "smtp://" + inbox.Addr()
		}
	}
	return d, nil
}

// devLookupTXT resolves TXT records for the DKIM verifier, which wants an error when none exist.
func devLookupTXT(ctx context.Context, r *dnscheck.Resolver, name string) ([]string, error) {
	ans, err := r.Lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	if txt := ans.TXT(); len(txt) > 0 {
		return txt, nil
	}
	return nil, fmt.Errorf("no TXT record at %s", name)
}

// publish makes the development DNS answer from the domains' expected records.
func (d *devServices) publish(src devdns.Source) {
	if d.dns != nil {
		d.dns.SetSource(src)
	}
}

// wrap serves /dev/inbox… from the catcher and everything else from next.
func (d *devServices) wrap(next http.Handler) http.Handler {
	if d.inbox == nil {
		return next
	}
	inbox := d.inbox.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dev/inbox" || strings.HasPrefix(r.URL.Path, "/dev/inbox/") || r.URL.Path == "/dev/inbox.json" {
			inbox.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops both; nothing is left to flush, so errors are of no use.
func (d *devServices) Close() {
	if d.inbox != nil {
		_ = d.inbox.Close()
	}
	if d.dns != nil {
		_ = d.dns.Close()
	}
}

// addrs reports the listeners for the banner.
func (d *devServices) addrs(a *listenAddrs) {
	if d.inbox != nil {
		a.DevInbox = d.inbox.Addr()
	}
	if d.dns != nil {
		a.DevDNS = d.dns.Addr()
	}
}

// printDevBanner says where the development inbox and DNS are, or that they are off.
func printDevBanner(w io.Writer, cfg *config.Config, a listenAddrs, base string) {
	switch {
	case cfg.Env == config.EnvProduction:
		fmt.Fprintln(w, "  development inbox and DNS: off (production)")
		return
	case a.DevInbox != "":
		fmt.Fprintf(w, "  development inbox: %s/dev/inbox (SMTP on %s; platform connectors deliver here)\n", base, a.DevInbox)
	default:
		fmt.Fprintln(w, "  development inbox: off (SENDWERK_DEV_INBOX_ADDR=off)")
	}
	if a.DevDNS != "" {
		fmt.Fprintf(w, "  development DNS: %s publishes the records of every domain under .%s (try shop.%s)\n", a.DevDNS, devdns.Suffix, devdns.Suffix)
	} else {
		fmt.Fprintln(w, "  development DNS: off (SENDWERK_DEV_DNS_ADDR=off)")
	}
}
