package main

import (
	"net"
	"os"
	"strconv"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/platform"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// webhookConfig is the operator's webhook policy: the upstream address policy applies to
// endpoints too, and production requires https.
func webhookConfig(cfg *config.Config) webhook.Config {
	return webhook.Config{
		RetrySchedule: cfg.WebhookRetrySchedule, Timeout: cfg.WebhookTimeout, DisableAfter: cfg.WebhookDisableAfter,
		SecretOverlap: cfg.WebhookSecretOverlap, AllowPrivateAddresses: cfg.AllowPrivateUpstreams,
		AllowHTTP: cfg.Env != config.EnvProduction, AllowAddrFunc: connector.PublicAddr,
	}
}

// platformFacts are what GET /v1/platform publishes, from the configuration. Relay ports are
// the configured ones (a port chosen by the system, :0, is not published), so restarts do not
// look like changes.
func platformFacts(cfg *config.Config) platform.Facts {
	f := platform.Facts{SPFInclude: cfg.SPFInclude, BounceDomain: cfg.BounceDomain, EgressNetworks: []string{}, RelayHosts: []event.RelayHost{}}
	for _, p := range cfg.EgressNetworks {
		f.EgressNetworks = append(f.EgressNetworks, p.String())
	}
	host := cfg.RelayPublicHost
	if host == "" {
		host = cfg.SMTPHostname
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	for _, l := range []struct{ addr, security string }{{cfg.SMTPAddr, "starttls"}, {cfg.SMTPSAddr, "tls"}} {
		if port := configuredPort(l.addr); port > 0 {
			f.RelayHosts = append(f.RelayHosts, event.RelayHost{Host: host, Port: port, Security: l.security})
		}
	}
	return platform.Normalize(f)
}

func configuredPort(addr string) int {
	if addr == "" || addr == "off" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
