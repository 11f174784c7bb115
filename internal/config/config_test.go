package config

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func load(env map[string]string, files map[string]string) (*Config, error) {
	return Load(func(k string) string { return env[k] }, func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, errors.New("no such file")
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, EnvDevelopment, c.Env)
		require.Equal(t, "localhost:8080", c.HTTPAddr)
		require.True(t, c.AutoMigrate)
		require.True(t, c.Embedded())
		require.Equal(t, 20*time.Second, c.ShutdownTimeout)
		require.Equal(t, int64(20<<20), c.MaxBodyBytes)
	})
	t.Run("ParsesValues", func(t *testing.T) {
		c, err := load(map[string]string{
			"SENDWERK_AUTO_MIGRATE": "false", "SENDWERK_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7/24",
			"SENDWERK_SHUTDOWN_TIMEOUT": "5s", "DATABASE_URL": "postgres://x@y/z",
		}, nil)
		require.NoError(t, err)
		require.False(t, c.AutoMigrate)
		require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24")}, c.TrustedProxies)
		require.Equal(t, 5*time.Second, c.ShutdownTimeout)
		require.False(t, c.Embedded())
	})
	t.Run("ErrorsNameTheVariable", func(t *testing.T) {
		_, err := load(map[string]string{
			"SENDWERK_LOG_FORMAT": "xml", "SENDWERK_DB_MAX_CONNS": "many", "SENDWERK_ADMIN_TOKEN": "short",
			"SENDWERK_SHUTDOWN_TIMEOUT": "-1s", "SENDWERK_TRUSTED_PROXIES": "10.0.0.0/99",
		}, nil)
		require.Error(t, err)
		for _, name := range []string{"SENDWERK_LOG_FORMAT", "SENDWERK_DB_MAX_CONNS", "SENDWERK_ADMIN_TOKEN", "SENDWERK_SHUTDOWN_TIMEOUT", "SENDWERK_TRUSTED_PROXIES"} {
			require.Contains(t, err.Error(), name)
		}
	})
	t.Run("CacheTTLDefaultsToTwoSecondsAndZeroTurnsItOff", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, 2*time.Second, c.CacheTTL)
		c, err = load(map[string]string{"SENDWERK_CACHE_TTL": "0"}, nil)
		require.NoError(t, err)
		require.Zero(t, c.CacheTTL)
		_, err = load(map[string]string{"SENDWERK_CACHE_TTL": "-1s"}, nil)
		require.ErrorContains(t, err, "SENDWERK_CACHE_TTL")
	})
	t.Run("RescueOutlastsAnAttempt", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, 2*time.Minute, c.AttemptTimeout)
		require.Equal(t, 3*time.Minute, c.JobRescueAfter)
		_, err = load(map[string]string{"SENDWERK_DELIVERY_ATTEMPT_TIMEOUT": "5m"}, nil)
		require.ErrorContains(t, err, "SENDWERK_JOB_RESCUE_AFTER: must be longer than SENDWERK_DELIVERY_ATTEMPT_TIMEOUT plus 15s")
		_, err = load(map[string]string{"SENDWERK_WEBHOOK_TIMEOUT": "175s"}, nil)
		require.ErrorContains(t, err, "SENDWERK_WEBHOOK_TIMEOUT: must be shorter than SENDWERK_JOB_RESCUE_AFTER")
		_, err = load(map[string]string{"SENDWERK_DELIVERY_ATTEMPT_TIMEOUT": "5s", "SENDWERK_JOB_RESCUE_AFTER": "25s"}, nil)
		require.NoError(t, err)
	})
	t.Run("SenderDomainSettings", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, "sw1", c.DKIMSelector)
		require.Equal(t, "sendwerk-verification", c.VerificationPrefix)
		require.Equal(t, 72*time.Hour, c.DomainGracePeriod)
		require.Equal(t, 3, c.DomainGraceChecks)
		require.Equal(t, 5*time.Minute, c.DomainCheckPending)
		require.Equal(t, 24*time.Hour, c.DomainCheckPendingFor)
		require.Equal(t, time.Hour, c.DomainCheckVerified)
		require.Empty(t, c.DNSServers, "empty means the system's resolvers")

		c, err = load(map[string]string{
			"SENDWERK_DNS_SERVERS": "192.0.2.53, [2001:db8::53]:5353,127.0.0.1:1053", "SENDWERK_SPF_IPS": "192.0.2.10, 198.51.100.7/24,2001:db8::/48",
			"SENDWERK_SPF_INCLUDE": "_spf.sendwerk.example.", "SENDWERK_DKIM_SELECTOR": "acme2025",
		}, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"192.0.2.53:53", "[2001:db8::53]:5353", "127.0.0.1:1053"}, c.DNSServers)
		require.Equal(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/48")}, c.SPFNetworks)
		require.Equal(t, "_spf.sendwerk.example", c.SPFInclude)
		require.Equal(t, "acme2025", c.DKIMSelector)

		_, err = load(map[string]string{
			"SENDWERK_DNS_SERVERS": "resolver:99999", "SENDWERK_SPF_IPS": "not-an-ip", "SENDWERK_SPF_INCLUDE": "no dots",
			"SENDWERK_DKIM_SELECTOR": "a.b", "SENDWERK_DOMAIN_GRACE_CHECKS": "0",
		}, nil)
		for _, name := range []string{"SENDWERK_DNS_SERVERS", "SENDWERK_SPF_IPS", "SENDWERK_SPF_INCLUDE", "SENDWERK_DKIM_SELECTOR", "SENDWERK_DOMAIN_GRACE_CHECKS"} {
			require.ErrorContains(t, err, name)
		}
	})
	t.Run("SecretsFromFiles", func(t *testing.T) {
		c, err := load(map[string]string{"SENDWERK_ADMIN_TOKEN_FILE": "/run/secrets/admin"},
			map[string]string{"/run/secrets/admin": "a-long-admin-token-from-a-file\n"})
		require.NoError(t, err)
		require.Equal(t, "a-long-admin-token-from-a-file", c.AdminToken)
	})
	t.Run("SecretAndFileBothSetIsAnError", func(t *testing.T) {
		_, err := load(map[string]string{"SENDWERK_ADMIN_TOKEN": "a-long-admin-token-here", "SENDWERK_ADMIN_TOKEN_FILE": "/x"}, nil)
		require.ErrorContains(t, err, "not both")
	})
	t.Run("SecretValuesNeverInErrors", func(t *testing.T) {
		_, err := load(map[string]string{"SENDWERK_ADMIN_TOKEN": "tiny"}, nil)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "tiny")
	})
	t.Run("ProductionNeedsSecretsAndDatabase", func(t *testing.T) {
		_, err := load(map[string]string{"SENDWERK_ENV": "production"}, nil)
		require.Error(t, err)
		for _, name := range []string{"DATABASE_URL", "SENDWERK_ADMIN_TOKEN", "SENDWERK_SECRET_KEY"} {
			require.Contains(t, err.Error(), name)
		}
		_, err = load(map[string]string{"SENDWERK_ENV": "production", "DATABASE_URL": "postgres://a@b/c",
			"SENDWERK_ADMIN_TOKEN": "0123456789abcdef", "SENDWERK_SECRET_KEY": "k"}, nil)
		require.ErrorContains(t, err, "SENDWERK_SECRET_KEY: must be base64 of exactly 32 bytes")
		prod := map[string]string{"SENDWERK_ENV": "production", "DATABASE_URL": "postgres://a@b/c",
			"SENDWERK_ADMIN_TOKEN": "0123456789abcdef", "SENDWERK_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
		_, err = load(prod, nil)
		require.ErrorContains(t, err, "SENDWERK_TLS_CERT_FILE: must be set when SENDWERK_ENV=production and an SMTP listener is on")
		prod["SENDWERK_TLS_CERT_FILE"], prod["SENDWERK_TLS_KEY_FILE"] = "/etc/sendwerk/tls/cert.pem", "/etc/sendwerk/tls/key.pem"
		c, err := load(prod, nil)
		require.NoError(t, err)
		require.Equal(t, ":587", c.SMTPAddr)
		require.Equal(t, ":465", c.SMTPSAddr)
		require.Empty(t, c.DevInboxAddr, "no mail catcher in production")
		require.Empty(t, c.DevDNSAddr, "no development DNS in production")
		prod["SENDWERK_DEV_INBOX_ADDR"] = "localhost:2525"
		_, err = load(prod, nil)
		require.ErrorContains(t, err, "SENDWERK_DEV_INBOX_ADDR and SENDWERK_DEV_DNS_ADDR: development only")
		prod["SENDWERK_DEV_INBOX_ADDR"] = "off"
		_, err = load(prod, nil)
		require.NoError(t, err)
	})
	t.Run("CORSOrigins", func(t *testing.T) {
		c, err := load(map[string]string{"SENDWERK_CORS_ORIGINS": "https://console.example.com/, http://localhost:5173"}, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"https://console.example.com", "http://localhost:5173"}, c.CORSOrigins)
		for _, bad := range []string{"console.example.com", "https://console.example.com/app", "ftp://x.example"} {
			_, err = load(map[string]string{"SENDWERK_CORS_ORIGINS": bad}, nil)
			require.ErrorContains(t, err, "SENDWERK_CORS_ORIGINS", bad)
		}
	})
	t.Run("DevelopmentInboxAndDNS", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, "localhost:2525", c.DevInboxAddr)
		require.Equal(t, "localhost:2553", c.DevDNSAddr)
		c, err = load(map[string]string{"SENDWERK_DEV_INBOX_ADDR": "off", "SENDWERK_DEV_DNS_ADDR": "127.0.0.1:0"}, nil)
		require.NoError(t, err)
		require.Empty(t, c.DevInboxAddr)
		require.Equal(t, "127.0.0.1:0", c.DevDNSAddr)
	})
	t.Run("UpstreamPolicyStrictInProduction", func(t *testing.T) {
		dev, err := load(nil, nil)
		require.NoError(t, err)
		require.True(t, dev.AllowPlaintextUpstreams)
		require.True(t, dev.AllowUnauthenticatedUpstreams)
		require.True(t, dev.AllowPrivateUpstreams)

		prod := map[string]string{"SENDWERK_ENV": "production", "DATABASE_URL": "postgres://a@b/c", "SENDWERK_SMTP_ADDR": "off", "SENDWERK_SMTPS_ADDR": "off",
			"SENDWERK_ADMIN_TOKEN": "0123456789abcdef", "SENDWERK_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
		c, err := load(prod, nil)
		require.NoError(t, err)
		require.False(t, c.AllowPlaintextUpstreams, "production refuses security: none unless opted in")
		require.False(t, c.AllowUnauthenticatedUpstreams, "production refuses auth_mechanism: none unless opted in")
		require.False(t, c.AllowPrivateUpstreams)

		prod["SENDWERK_ALLOW_PLAINTEXT_UPSTREAMS"], prod["SENDWERK_ALLOW_UNAUTHENTICATED_UPSTREAMS"] = "true", "true"
		c, err = load(prod, nil)
		require.NoError(t, err)
		require.True(t, c.AllowPlaintextUpstreams)
		require.True(t, c.AllowUnauthenticatedUpstreams)
		require.False(t, c.AllowPrivateUpstreams, "each variable opts in on its own")

		c, err = load(map[string]string{"SENDWERK_ALLOW_PLAINTEXT_UPSTREAMS": "false"}, nil)
		require.NoError(t, err)
		require.False(t, c.AllowPlaintextUpstreams, "development can opt out")
		require.True(t, c.AllowUnauthenticatedUpstreams)
	})
	t.Run("ProfilerOnlyOnTheMetricsListener", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.False(t, c.MetricsPprof, "off unless asked for")
		c, err = load(map[string]string{"SENDWERK_METRICS_PPROF": "true", "SENDWERK_METRICS_ADDR": "127.0.0.1:9464"}, nil)
		require.NoError(t, err)
		require.True(t, c.MetricsPprof)
		_, err = load(map[string]string{"SENDWERK_METRICS_PPROF": "true"}, nil)
		require.ErrorContains(t, err, "SENDWERK_METRICS_PPROF: needs SENDWERK_METRICS_ADDR")
	})
	t.Run("MetricsNotOpenOnTheAPIPortInProduction", func(t *testing.T) {
		dev, err := load(nil, nil)
		require.NoError(t, err)
		require.True(t, dev.MetricsOnAPI())
		dev, err = load(map[string]string{"SENDWERK_METRICS_ADDR": "127.0.0.1:9464"}, nil)
		require.NoError(t, err)
		require.False(t, dev.MetricsOnAPI(), "a listener of its own takes /metrics off the API port")
		require.Equal(t, "127.0.0.1:9464", dev.MetricsAddr)

		prod := map[string]string{"SENDWERK_ENV": "production", "DATABASE_URL": "postgres://a@b/c", "SENDWERK_SMTP_ADDR": "off", "SENDWERK_SMTPS_ADDR": "off",
			"SENDWERK_ADMIN_TOKEN": "0123456789abcdef", "SENDWERK_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
		c, err := load(prod, nil)
		require.NoError(t, err)
		require.False(t, c.MetricsOnAPI())
		prod["SENDWERK_METRICS_TOKEN"] = "metrics-token-0123"
		c, err = load(prod, nil)
		require.NoError(t, err)
		require.True(t, c.MetricsOnAPI(), "behind its token")

		_, err = load(map[string]string{"SENDWERK_METRICS_TOKEN": "short", "SENDWERK_METRICS_ADDR": "9464"}, nil)
		require.ErrorContains(t, err, "SENDWERK_METRICS_TOKEN: must be at least 16 characters")
		require.ErrorContains(t, err, "SENDWERK_METRICS_ADDR")
	})
	t.Run("SMTPRelaySettings", func(t *testing.T) {
		c, err := load(nil, nil)
		require.NoError(t, err)
		require.Equal(t, "localhost:2587", c.SMTPAddr)
		require.Equal(t, "localhost:2465", c.SMTPSAddr)
		require.False(t, c.SMTPAllowInsecureAuth)
		require.Equal(t, 20, c.SMTPMaxConnsPerIP)
		require.Equal(t, 5*time.Minute, c.SMTPTimeout)
		require.Equal(t, 5, c.SMTPAuthFailureLimit)

		c, err = load(map[string]string{"SENDWERK_SMTP_ADDR": "off", "SENDWERK_SMTPS_ADDR": "127.0.0.1:0", "SENDWERK_SMTP_HOSTNAME": "relay.example.com"}, nil)
		require.NoError(t, err)
		require.Empty(t, c.SMTPAddr, "off disables the listener")
		require.Equal(t, "127.0.0.1:0", c.SMTPSAddr)
		require.True(t, c.SMTPListens())
		require.Equal(t, "relay.example.com", c.SMTPHostname)

		_, err = load(map[string]string{"SENDWERK_SMTP_ADDR": "587", "SENDWERK_SMTP_HOSTNAME": "bad_name"}, nil)
		require.ErrorContains(t, err, "SENDWERK_SMTP_ADDR")
		require.ErrorContains(t, err, `SENDWERK_SMTP_HOSTNAME: "bad_name" is not a host name`)
		_, err = load(map[string]string{"SENDWERK_TLS_CERT_FILE": "/x.pem"}, nil)
		require.ErrorContains(t, err, "SENDWERK_TLS_CERT_FILE and SENDWERK_TLS_KEY_FILE: set both or neither")
	})
}
