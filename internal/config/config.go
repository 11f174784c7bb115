// Package config is the one table of SENDWERK_* settings: names, defaults, parsing and
// validation. main loads it once and passes narrow pieces down; nothing else reads the
// environment.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environments.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Config is every setting of a Sendwerk process.
type Config struct {
	Env             string
	HTTPAddr        string
	DatabaseURL     string
	DataDir         string
	AdminToken      string
	SecretKey       string
	AutoMigrate     bool
	LogFormat       string
	LogLevel        string
	MaxBodyBytes    int64
	DBMaxConns      int32
	ShutdownTimeout time.Duration
	TrustedProxies  []netip.Prefix
	JobWorkers      int

	// Metrics: MetricsAddr is a listener of its own; MetricsToken guards /metrics on the
	// API port (see MetricsOnAPI).
	MetricsAddr  string
	MetricsToken string
	// MetricsPprof adds Go's profiler (/debug/pprof/) to the MetricsAddr listener.
	MetricsPprof bool

	// Message pipeline.
	MaxMessageBytes      int64
	DeliveryWorkers      int
	DirectAttempts       int
	SubmitCommitters     int
	RetrySchedule        []time.Duration
	AttemptTimeout       time.Duration
	JobRescueAfter       time.Duration
	ReconcileInterval    time.Duration
	SMTPPoolSize         int
	SMTPPoolIdle         time.Duration
	CacheTTL             time.Duration
	BreakerThreshold     int
	BodyRetention        time.Duration
	JobFetchCooldown     time.Duration
	APIKeyRequestsPerSec int

	PreviousSecretKeys []string
	PlatformSMTPURL    string
	// AllowPrivateUpstreams defaults from Env when unset (see Load).
	AllowPrivateUpstreams         bool
	AllowPlaintextUpstreams       bool
	AllowUnauthenticatedUpstreams bool
	UpstreamCAFile                string
	allowPrivateSet               bool
	allowPlaintextSet             bool
	allowNoAuthSet                bool

	// SMTP relay host. An empty address does not listen.
	SMTPAddr              string
	SMTPSAddr             string
	SMTPHostname          string
	TLSCertFile           string
	TLSKeyFile            string
	SMTPAllowInsecureAuth bool
	SMTPMaxConnsPerIP     int
	SMTPTimeout           time.Duration
	SMTPAuthFailureLimit  int
	smtpAddrSet           bool
	smtpsAddrSet          bool

	// DNS and sender domains.
	DNSServers                []string
	DNSTimeout                time.Duration
	DKIMSelector              string
	VerificationPrefix        string
	SPFInclude                string
	SPFNetworks               []netip.Prefix
	DomainGracePeriod         time.Duration
	DomainGraceChecks         int
	DomainCheckPending        time.Duration
	DomainCheckPendingFor     time.Duration
	DomainCheckVerified       time.Duration
	DomainChecksInFlight      int
	DomainManualCheckInterval time.Duration
	DKIMKeyOverlap            time.Duration
	DKIMRotationNotice        time.Duration

	// Bounce intake for platform connectors.
	BounceDomain   string
	BounceSMTPAddr string
	// Events, webhooks and platform facts.
	EventRetention       time.Duration
	WebhookRetrySchedule []time.Duration
	WebhookTimeout       time.Duration
	WebhookDisableAfter  time.Duration
	WebhookSecretOverlap time.Duration
	WebhookWorkers       int
	EgressNetworks       []netip.Prefix
	RelayPublicHost      string
	// Development mail catcher and DNS server; empty when off (always in production).
	CORSOrigins     []string
	DevInboxAddr    string
	DevDNSAddr      string
	devInboxAddrSet bool
	devDNSAddrSet   bool
}

// Var is one row of the settings table.
type Var struct {
	Name    string
	Default string
	Help    string
	// Secret variables also accept NAME_FILE (a file holding the value) and are never printed.
	Secret bool
	set    func(c *Config, v string) error
}

// Vars is the settings table, in the order docs/configuration.md lists it.
func Vars() []Var {
	return []Var{
		{Name: "SENDWERK_ENV", Default: EnvDevelopment, Help: "`development` or `production`; production refuses generated secrets and the embedded database.",
			set: func(c *Config, v string) error { return oneOf(&c.Env, v, EnvDevelopment, EnvProduction) }},
		{Name: "SENDWERK_HTTP_ADDR", Default: "localhost:8080", Help: "Address the REST API listens on.",
			set: func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
		{Name: "DATABASE_URL", Secret: true, Help: "PostgreSQL URL. Unset: an embedded PostgreSQL under `SENDWERK_DATA_DIR/postgres` (development only).",
			set: func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
		{Name: "SENDWERK_DATA_DIR", Default: ".data", Help: "Where development state lives: embedded database, generated admin token and secret key.",
			set: func(c *Config, v string) error { c.DataDir = v; return nil }},
		{Name: "SENDWERK_ADMIN_TOKEN", Secret: true, Help: "Operator bearer token for `/v1/tenants` (at least 16 characters). Unset in development: generated and kept in the data dir.",
			set: func(c *Config, v string) error { c.AdminToken = v; return minLen(v, 16) }},
		{Name: "SENDWERK_SECRET_KEY", Secret: true, Help: "Base64 of 32 random bytes; encrypts stored secrets (AES-256-GCM). Unset in development: generated and kept in the data dir.",
			set: func(c *Config, v string) error { c.SecretKey = v; return checkKey(v) }},
		{Name: "SENDWERK_SECRET_KEY_PREVIOUS", Secret: true, Help: "Comma-separated earlier secret keys, still used to decrypt secrets sealed before a key rotation.",
			set: func(c *Config, v string) error { return parseKeys(&c.PreviousSecretKeys, v) }},
		{Name: "SENDWERK_PLATFORM_SMTP_URL", Secret: true, Help: "The operator's relay for `platform` connectors, e.g. `smtp+starttls://user:pass@smtp.example.com:587` (`smtp://`, `smtp+starttls://`, `smtps://`; query `auth=login`, `helo=`, `skip_verify=true`). Unset: the development inbox when it runs, else no platform connectors.",
			set: func(c *Config, v string) error { c.PlatformSMTPURL = v; return nil }},
		{Name: "SENDWERK_ALLOW_PRIVATE_UPSTREAMS", Help: "Let tenants' SMTP servers be on loopback, private or link-local addresses. Default: true in development, false in production.",
			set: func(c *Config, v string) error {
				return parseOptionalBool(&c.AllowPrivateUpstreams, &c.allowPrivateSet, v)
			}},
		{Name: "SENDWERK_ALLOW_PLAINTEXT_UPSTREAMS", Help: "Allow connectors with `security: none` (flagged insecure): messages and passwords cross the network unencrypted. Default: true in development, false in production.",
			set: func(c *Config, v string) error {
				return parseOptionalBool(&c.AllowPlaintextUpstreams, &c.allowPlaintextSet, v)
			}},
		{Name: "SENDWERK_ALLOW_UNAUTHENTICATED_UPSTREAMS", Help: "Allow connectors with `auth_mechanism: none` (an open relay of the tenant's). Default: true in development, false in production.",
			set: func(c *Config, v string) error {
				return parseOptionalBool(&c.AllowUnauthenticatedUpstreams, &c.allowNoAuthSet, v)
			}},
		{Name: "SENDWERK_UPSTREAM_CA_FILE", Help: "PEM file of extra CA certificates trusted for upstream SMTP servers, besides the system's.",
			set: func(c *Config, v string) error { c.UpstreamCAFile = v; return nil }},
		{Name: "SENDWERK_SMTP_ADDR", Help: "SMTP submission listener of the relay host (STARTTLS, then AUTH). Unset: `localhost:2587` in development, `:587` in production; `off` disables it.",
			set: func(c *Config, v string) error {
				c.smtpAddrSet = v != ""
				return parseListenAddr(&c.SMTPAddr, v)
			}},
		{Name: "SENDWERK_SMTPS_ADDR", Help: "SMTP listener with implicit TLS (SMTPS). Unset: `localhost:2465` in development, `:465` in production; `off` disables it.",
			set: func(c *Config, v string) error {
				c.smtpsAddrSet = v != ""
				return parseListenAddr(&c.SMTPSAddr, v)
			}},
		{Name: "SENDWERK_SMTP_HOSTNAME", Help: "The relay host's name in its banner and `Received:` lines, and the name its certificate should carry. Unset: the machine's host name.",
			set: func(c *Config, v string) error {
				c.SMTPHostname = strings.TrimSuffix(v, ".")
				return checkServerName(c.SMTPHostname)
			}},
		{Name: "SENDWERK_TLS_CERT_FILE", Help: "PEM certificate (chain) of the SMTP listeners; reloaded when the file changes. Required in production; unset in development: a self-signed one is generated in the data dir.",
			set: func(c *Config, v string) error { c.TLSCertFile = v; return nil }},
		{Name: "SENDWERK_TLS_KEY_FILE", Help: "PEM private key of `SENDWERK_TLS_CERT_FILE`; reloaded with it.",
			set: func(c *Config, v string) error { c.TLSKeyFile = v; return nil }},
		{Name: "SENDWERK_SMTP_ALLOW_INSECURE_AUTH", Default: "false", Help: "Allow AUTH without TLS, from loopback clients only (a program on the same host). Other clients always need TLS first.",
			set: func(c *Config, v string) error { return parseBool(&c.SMTPAllowInsecureAuth, v) }},
		{Name: "SENDWERK_SMTP_MAX_CONNS_PER_IP", Default: "20", Help: "Simultaneous SMTP connections one client address may hold; more are answered 421.",
			set: func(c *Config, v string) error { return parseInt(&c.SMTPMaxConnsPerIP, v, 1) }},
		{Name: "SENDWERK_SMTP_TIMEOUT", Default: "5m", Help: "How long the relay host gives a client for one whole command line, and for one whole message (from 354 to the final dot, or all BDAT chunks), and waits for each write; then it hangs up with 421.",
			set: func(c *Config, v string) error { return parseDuration(&c.SMTPTimeout, v) }},
		{Name: "SENDWERK_SMTP_AUTH_FAILURE_LIMIT", Default: "5", Help: "Failed SMTP logins one client address may make within 5 minutes (one user name: twice as many); further logins get 454 until the window passes.",
			set: func(c *Config, v string) error { return parseInt(&c.SMTPAuthFailureLimit, v, 1) }},
		{Name: "SENDWERK_BOUNCE_DOMAIN", Help: "The operator's bounce domain (e.g. `bounces.sendwerk.example`): `platform` connectors send with the return path `bounces+<token>@` it, and the bounce listener takes DSNs and complaints for it. Its MX must point at `SENDWERK_BOUNCE_SMTP_ADDR`; published at `GET /v1/platform`. Unset: platform mail keeps the sender's return path and no bounces are taken in.",
			set: func(c *Config, v string) error {
				c.BounceDomain = strings.ToLower(strings.TrimSuffix(v, "."))
				return checkHostName(c.BounceDomain)
			}},
		{Name: "SENDWERK_BOUNCE_SMTP_ADDR", Help: "Listen address of the bounce listener (SMTP without AUTH, only for `SENDWERK_BOUNCE_DOMAIN`, reports up to 2 MB), e.g. `:25`. Unset or `off`: no listener.",
			set: func(c *Config, v string) error { return parseListenAddr(&c.BounceSMTPAddr, v) }},
		{Name: "SENDWERK_DNS_SERVERS", Help: "Comma-separated DNS resolvers (`host:port`) for sender-domain checks. Unset: the development DNS when it runs, else the nameservers of `/etc/resolv.conf`.",
			set: func(c *Config, v string) error { return parseServers(&c.DNSServers, v) }},
		{Name: "SENDWERK_DNS_TIMEOUT", Default: "2s", Help: "Wait for one DNS answer; each lookup tries every server twice, over TCP when an answer is truncated.",
			set: func(c *Config, v string) error { return parseDuration(&c.DNSTimeout, v) }},
		{Name: "SENDWERK_DKIM_SELECTOR", Default: "sw1", Help: "DKIM selector of new domains' keys: customers publish `<selector>._domainkey.<domain>`.",
			set: func(c *Config, v string) error { c.DKIMSelector = v; return checkLabel(v) }},
		{Name: "SENDWERK_VERIFICATION_PREFIX", Default: "sendwerk-verification", Help: "Prefix of the ownership TXT record, `<prefix>=<token>`.",
			set: func(c *Config, v string) error { c.VerificationPrefix = v; return checkLabel(v) }},
		{Name: "SENDWERK_SPF_INCLUDE", Help: "The platform's SPF include (e.g. `_spf.sendwerk.example`) that customers add to their SPF record. Unset: customers list `SENDWERK_SPF_IPS` instead.",
			set: func(c *Config, v string) error {
				c.SPFInclude = strings.TrimSuffix(v, ".")
				return checkHostName(c.SPFInclude)
			}},
		{Name: "SENDWERK_SPF_IPS", Help: "Comma-separated IPs or CIDRs the platform relay sends from; SPF checks pass when the domain authorises all of them (or contains the include). Unset with no include: SPF is not checked.",
			set: func(c *Config, v string) error { return parseNetworks(&c.SPFNetworks, v) }},
		{Name: "SENDWERK_DOMAIN_GRACE_PERIOD", Default: "72h", Help: "How long a verified domain's records may fail before it loses send rights (`at_risk` meanwhile).",
			set: func(c *Config, v string) error { return parseDuration(&c.DomainGracePeriod, v) }},
		{Name: "SENDWERK_DOMAIN_GRACE_CHECKS", Default: "3", Help: "Consecutive failed checks needed, besides the grace period, before a domain is revoked.",
			set: func(c *Config, v string) error { return parseInt(&c.DomainGraceChecks, v, 1) }},
		{Name: "SENDWERK_DOMAIN_CHECK_INTERVAL_PENDING", Default: "5m", Help: "How often pending domains are checked during their first `SENDWERK_DOMAIN_CHECK_INTERVAL_PENDING_AFTER`.",
			set: func(c *Config, v string) error { return parseDuration(&c.DomainCheckPending, v) }},
		{Name: "SENDWERK_DOMAIN_CHECK_INTERVAL_PENDING_AFTER", Default: "24h", Help: "How long after creation pending domains keep the fast cadence; then they are checked like verified ones.",
			set: func(c *Config, v string) error { return parseDuration(&c.DomainCheckPendingFor, v) }},
		{Name: "SENDWERK_DOMAIN_CHECK_INTERVAL_VERIFIED", Default: "1h", Help: "How often verified, at-risk and revoked domains are re-checked.",
			set: func(c *Config, v string) error { return parseDuration(&c.DomainCheckVerified, v) }},
		{Name: "SENDWERK_DOMAIN_CHECKS_IN_FLIGHT", Default: "10", Help: "Scheduled domain checks this process runs at once.",
			set: func(c *Config, v string) error { return parseInt(&c.DomainChecksInFlight, v, 1) }},
		{Name: "SENDWERK_DOMAIN_MANUAL_CHECK_INTERVAL", Default: "10s", Help: "Least time between two `POST /v1/domains/{id}/check` of one domain; sooner ones get 429.",
			set: func(c *Config, v string) error { return parseDuration(&c.DomainManualCheckInterval, v) }},
		{Name: "SENDWERK_EVENT_RETENTION", Default: "720h", Help: "Events stay readable at `GET /v1/events` (and redeliverable) this long.",
			set: func(c *Config, v string) error { return parseDuration(&c.EventRetention, v) }},
		{Name: "SENDWERK_WEBHOOK_RETRY_SCHEDULE", Default: "5s,5m,30m,2h,5h,10h,10h", Help: "Waits after each failed webhook attempt; its length + 1 is the number of attempts per delivery.",
			set: func(c *Config, v string) error { return parseDurations(&c.WebhookRetrySchedule, v) }},
		{Name: "SENDWERK_WEBHOOK_TIMEOUT", Default: "10s", Help: "Time a webhook endpoint has to connect and answer.",
			set: func(c *Config, v string) error { return parseDuration(&c.WebhookTimeout, v) }},
		{Name: "SENDWERK_WEBHOOK_DISABLE_AFTER", Default: "120h", Help: "A webhook whose attempts all fail for this long is disabled (with a `webhook.disabled` event and the reason).",
			set: func(c *Config, v string) error { return parseDuration(&c.WebhookDisableAfter, v) }},
		{Name: "SENDWERK_WEBHOOK_SECRET_OVERLAP", Default: "24h", Help: "Default time a rotated-out webhook secret keeps signing beside the new one.",
			set: func(c *Config, v string) error { return parseDuration(&c.WebhookSecretOverlap, v) }},
		{Name: "SENDWERK_WEBHOOK_WORKERS", Default: "20", Help: "Webhook requests this process makes at once (the webhooks queue).",
			set: func(c *Config, v string) error { return parseInt(&c.WebhookWorkers, v, 1) }},
		{Name: "SENDWERK_EGRESS_NETWORKS", Help: "Comma-separated CIDRs Sendwerk connects to tenants' SMTP servers from, published at `GET /v1/platform` for their firewalls. A change notifies every tenant (`platform.changed`).",
			set: func(c *Config, v string) error { return parsePrefixes(&c.EgressNetworks, v) }},
		{Name: "SENDWERK_RELAY_PUBLIC_HOST", Help: "The relay host's name as customers configure it, published at `GET /v1/platform` with the listeners' ports. Unset: `SENDWERK_SMTP_HOSTNAME`.",
			set: func(c *Config, v string) error {
				c.RelayPublicHost = strings.TrimSuffix(v, ".")
				return checkHostName(c.RelayPublicHost)
			}},
		{Name: "SENDWERK_DKIM_KEY_OVERLAP", Default: "168h", Help: "After a DKIM key rotation, how long the replaced key stays listed (`retiring`) before its record may be removed: mail signed with it may still be verified meanwhile.",
			set: func(c *Config, v string) error { return parseDuration(&c.DKIMKeyOverlap, v) }},
		{Name: "SENDWERK_DKIM_ROTATION_NOTICE", Default: "336h", Help: "For domains with scheduled rotation (`dkim_rotation_days`): how long before the date the new key is created and the tenant told (`dkim_rotation_due`), so its record can be published in time.",
			set: func(c *Config, v string) error { return parseDuration(&c.DKIMRotationNotice, v) }},
		{Name: "SENDWERK_AUTO_MIGRATE", Default: "true", Help: "Apply database migrations when `serve` starts.",
			set: func(c *Config, v string) error { return parseBool(&c.AutoMigrate, v) }},
		{Name: "SENDWERK_LOG_FORMAT", Default: "text", Help: "`text` or `json`.",
			set: func(c *Config, v string) error { return oneOf(&c.LogFormat, v, "text", "json") }},
		{Name: "SENDWERK_LOG_LEVEL", Default: "info", Help: "`debug`, `info`, `warn` or `error`.",
			set: func(c *Config, v string) error { return oneOf(&c.LogLevel, v, "debug", "info", "warn", "error") }},
		{Name: "SENDWERK_MAX_BODY_BYTES", Default: "20971520", Help: "Largest accepted request body in bytes; larger ones get 413.",
			set: func(c *Config, v string) error { return parseInt64(&c.MaxBodyBytes, v, 1024) }},
		{Name: "SENDWERK_DB_MAX_CONNS", Default: "20", Help: "Size of the PostgreSQL connection pool.",
			set: func(c *Config, v string) error { return parseInt32(&c.DBMaxConns, v, 2) }},
		{Name: "SENDWERK_MAX_MESSAGE_BYTES", Default: "10485760", Help: "Largest message accepted, measured as rendered MIME (attachments base64-encoded).",
			set: func(c *Config, v string) error { return parseInt64(&c.MaxMessageBytes, v, 1024) }},
		{Name: "SENDWERK_SUBMIT_COMMITTERS", Default: "2", Help: "Transactions that may commit single submissions (REST and SMTP) at once; concurrent submissions waiting meanwhile are committed together (group commit), and a committer waits up to 2 ms for submissions still being validated. One commits while the queue fills behind it; another starts only when the oldest waiting submission has waited 10 ms (a slow commit). `0`: one transaction per submission.",
			set: func(c *Config, v string) error { return parseInt(&c.SubmitCommitters, v, 0) }},
		{Name: "SENDWERK_DELIVERY_WORKERS", Default: "32", Help: "Deliveries this process runs at once (the deliveries queue).",
			set: func(c *Config, v string) error { return parseInt(&c.DeliveryWorkers, v, 1) }},
		{Name: "SENDWERK_DIRECT_ATTEMPTS", Default: "32", Help: "First delivery attempts this process runs at once right after the submission's commit, besides the deliveries queue's workers: the job is stored as taken by this process, so River's fetch is skipped (a process that dies mid-attempt has its jobs retried by River's rescuer, as for fetched ones). A submission that finds all taken, or carries send_at, goes through the deliveries queue. `0` sends every delivery through the queue.",
			set: func(c *Config, v string) error { return parseInt(&c.DirectAttempts, v, 0) }},
		{Name: "SENDWERK_DELIVERY_RETRY_SCHEDULE", Default: "1m,5m,15m,30m,1h,2h,4h,8h,12h,24h,24h", Help: "Waits after each failed attempt (temporary failures); its length + 1 is the number of attempts before a message fails.",
			set: func(c *Config, v string) error { return parseDurations(&c.RetrySchedule, v) }},
		{Name: "SENDWERK_DELIVERY_ATTEMPT_TIMEOUT", Default: "2m", Help: "Longest one delivery attempt may take (connect, send, the upstream's reply); then it is cancelled and retried.",
			set: func(c *Config, v string) error { return parseDuration(&c.AttemptTimeout, v) }},
		{Name: "SENDWERK_JOB_RESCUE_AFTER", Default: "3m", Help: "A job still `running` this long is taken to belong to a dead process and is retried; must exceed `SENDWERK_DELIVERY_ATTEMPT_TIMEOUT` by more than 15s.",
			set: func(c *Config, v string) error { return parseDuration(&c.JobRescueAfter, v) }},
		{Name: "SENDWERK_RECONCILE_INTERVAL", Default: "1m", Help: "How often the leader looks for messages whose delivery job ended without them (and repairs them).",
			set: func(c *Config, v string) error { return parseDuration(&c.ReconcileInterval, v) }},
		{Name: "SENDWERK_SMTP_POOL_SIZE", Default: "8", Help: "Open connections per connector and process; messages reuse them.",
			set: func(c *Config, v string) error { return parseInt(&c.SMTPPoolSize, v, 1) }},
		{Name: "SENDWERK_SMTP_POOL_IDLE", Default: "30s", Help: "Idle connections to an upstream are closed after this long.",
			set: func(c *Config, v string) error { return parseDuration(&c.SMTPPoolIdle, v) }},
		{Name: "SENDWERK_CACHE_TTL", Default: "2s", Help: "How long a process reuses a connector, an API key, a sending domain's status or a tenant it read, instead of reading it for every message. A change made through this process (a revoked key, a paused connector, a domain losing its send rights) applies here at once; another process on the same database sees it within this time at most, so a key revoked elsewhere can still authenticate, and a connector paused elsewhere still accept mail, for up to this long. Suppressions are never cached. 0 turns the caches off.",
			set: func(c *Config, v string) error { return parseDurationOrZero(&c.CacheTTL, v) }},
		{Name: "SENDWERK_CONNECTOR_BREAKER_THRESHOLD", Default: "3", Help: "Delivery attempts in a row (across messages) that may fail with a rejected password, a certificate that does not verify, or settings that cannot work with the server (e.g. `auth.requires_tls`) before the connector is paused (`paused_reason` names the code); queued messages wait until a passing connection test or a PATCH resumes it.",
			set: func(c *Config, v string) error { return parseInt(&c.BreakerThreshold, v, 1) }},
		{Name: "SENDWERK_MESSAGE_BODY_RETENTION", Default: "720h", Help: "Bodies of finished messages are purged after this long; metadata and events stay.",
			set: func(c *Config, v string) error { return parseDuration(&c.BodyRetention, v) }},
		{Name: "SENDWERK_JOB_FETCH_COOLDOWN", Default: "2ms", Help: "Shortest pause between two fetches of one job queue; lower means faster pickup under load, more queries. New jobs are announced at once (one notification per queue and millisecond at most), and the deliveries queue is also polled every 100ms.",
			set: func(c *Config, v string) error { return parseDuration(&c.JobFetchCooldown, v) }},
		{Name: "SENDWERK_API_KEY_RATE_LIMIT", Default: "100", Help: "Requests per second one API key may make to this process (burst: twice that); 429 beyond.",
			set: func(c *Config, v string) error { return parseInt(&c.APIKeyRequestsPerSec, v, 1) }},
		{Name: "SENDWERK_JOB_WORKERS", Default: "20", Help: "Background job workers in this process.",
			set: func(c *Config, v string) error { return parseInt(&c.JobWorkers, v, 1) }},
		{Name: "SENDWERK_SHUTDOWN_TIMEOUT", Default: "20s", Help: "How long a stop waits for requests and jobs in flight.",
			set: func(c *Config, v string) error { return parseDuration(&c.ShutdownTimeout, v) }},
		{Name: "SENDWERK_METRICS_ADDR", Help: "Listener of its own for Prometheus' `GET /metrics` (e.g. `127.0.0.1:9464`; scrapers reach it on a private network). Unset: `/metrics` is on the API port in development, and only with `SENDWERK_METRICS_TOKEN` in production.",
			set: func(c *Config, v string) error { return parseListenAddr(&c.MetricsAddr, v) }},
		{Name: "SENDWERK_METRICS_TOKEN", Secret: true, Help: "Bearer token that `GET /metrics` on the API port requires (at least 16 characters); Prometheus sends it as `authorization: credentials`.",
			set: func(c *Config, v string) error { c.MetricsToken = v; return minLen(v, 16) }},
		{Name: "SENDWERK_METRICS_PPROF", Default: "false", Help: "`true`: the `SENDWERK_METRICS_ADDR` listener also serves Go's profiler under `/debug/pprof/` (CPU, heap, goroutines), for tuning. Never on the API port; needs `SENDWERK_METRICS_ADDR`.",
			set: func(c *Config, v string) error { return parseBool(&c.MetricsPprof, v) }},
		{Name: "SENDWERK_TRUSTED_PROXIES", Help: "Comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` is believed; empty trusts none.",
			set: func(c *Config, v string) error { return parsePrefixes(&c.TrustedProxies, v) }},
		{Name: "SENDWERK_CORS_ORIGINS", Help: "Comma-separated browser origins (`https://console.example.com`, or `*`) allowed to call the API from their pages; bearer tokens only, never cookies. Unset: no CORS (proxy `/v1` through your backend instead).",
			set: func(c *Config, v string) error { return parseOrigins(&c.CORSOrigins, v) }},
		{Name: "SENDWERK_DEV_INBOX_ADDR", Help: "Development mail catcher: SMTP on this address, messages shown at `/dev/inbox`; the platform relay defaults to it. Unset: `localhost:2525` in development; `off` disables it; never in production.",
			set: func(c *Config, v string) error {
				c.devInboxAddrSet = v != ""
				return parseListenAddr(&c.DevInboxAddr, v)
			}},
		{Name: "SENDWERK_DEV_DNS_ADDR", Help: "Development DNS server (UDP and TCP) publishing the records Sendwerk asks for under `.test`; `SENDWERK_DNS_SERVERS` defaults to it. Unset: `localhost:2553` in development; `off` disables it; never in production.",
			set: func(c *Config, v string) error {
				c.devDNSAddrSet = v != ""
				return parseListenAddr(&c.DevDNSAddr, v)
			}},
	}
}

// Load reads every variable through getenv (and readFile for *_FILE secrets), applies
// defaults and validates. The error names the variable at fault.
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	c := &Config{}
	var errs []error
	for _, v := range Vars() {
		val, err := lookup(v, getenv, readFile)
		if err == nil {
			if val == "" {
				val = v.Default
			}
			err = v.set(c, val)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The upstream policy is lenient in development (a local test server) and strict in
	// production unless the operator opts in, variable by variable.
	for _, p := range []struct {
		dst *bool
		set bool
	}{{&c.AllowPrivateUpstreams, c.allowPrivateSet}, {&c.AllowPlaintextUpstreams, c.allowPlaintextSet}, {&c.AllowUnauthenticatedUpstreams, c.allowNoAuthSet}} {
		if !p.set {
			*p.dst = c.Env != EnvProduction
		}
	}
	if !c.smtpAddrSet {
		c.SMTPAddr = map[bool]string{true: ":587", false: "localhost:2587"}[c.Env == EnvProduction]
	}
	if !c.smtpsAddrSet {
		c.SMTPSAddr = map[bool]string{true: ":465", false: "localhost:2465"}[c.Env == EnvProduction]
	}
	if !c.devInboxAddrSet && c.Env != EnvProduction {
		c.DevInboxAddr = "localhost:2525"
	}
	if !c.devDNSAddrSet && c.Env != EnvProduction {
		c.DevDNSAddr = "localhost:2553"
	}
	return c, c.Validate()
}

// LoadEnv loads from the process environment.
func LoadEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

// outcomeRecording is how long a delivery attempt may take to record its outcome after the
// attempt timeout (message.RecordTimeout; config does not import message).
const outcomeRecording = 15 * time.Second

// webhookRecording bounds the bookkeeping around one webhook request (webhook.DeliverWorker's
// timeout is the request's plus this).
const webhookRecording = 5 * time.Second

// Validate checks rules that span variables.
func (c *Config) Validate() error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("SENDWERK_TLS_CERT_FILE and SENDWERK_TLS_KEY_FILE: set both or neither"))
	}
	if c.BounceSMTPAddr != "" && c.BounceDomain == "" {
		errs = append(errs, errors.New("SENDWERK_BOUNCE_SMTP_ADDR: needs SENDWERK_BOUNCE_DOMAIN, the domain it takes bounces for"))
	}
	if c.WebhookTimeout > 0 && c.JobRescueAfter > 0 && c.JobRescueAfter <= c.WebhookTimeout+webhookRecording {
		errs = append(errs, fmt.Errorf("SENDWERK_WEBHOOK_TIMEOUT: must be shorter than SENDWERK_JOB_RESCUE_AFTER minus %s, or webhook attempts would be retried while they still run", webhookRecording))
	}
	if c.MetricsPprof && c.MetricsAddr == "" {
		errs = append(errs, errors.New("SENDWERK_METRICS_PPROF: needs SENDWERK_METRICS_ADDR, the listener that serves the profiler"))
	}
	if c.AttemptTimeout > 0 && c.JobRescueAfter <= c.AttemptTimeout+outcomeRecording {
		errs = append(errs, fmt.Errorf("SENDWERK_JOB_RESCUE_AFTER: must be longer than SENDWERK_DELIVERY_ATTEMPT_TIMEOUT plus %s (recording the outcome), or attempts would be retried while they still run", outcomeRecording))
	}
	if c.Env != EnvProduction {
		return errors.Join(errs...)
	}
	if c.DevInboxAddr != "" || c.DevDNSAddr != "" {
		errs = append(errs, errors.New("SENDWERK_DEV_INBOX_ADDR and SENDWERK_DEV_DNS_ADDR: development only; unset them (or set off) when SENDWERK_ENV=production"))
	}
	if c.SMTPListens() && c.TLSCertFile == "" {
		errs = append(errs, errors.New("SENDWERK_TLS_CERT_FILE: must be set when SENDWERK_ENV=production and an SMTP listener is on (or set SENDWERK_SMTP_ADDR=off and SENDWERK_SMTPS_ADDR=off)"))
	}
	for name, val := range map[string]string{
		"DATABASE_URL":         c.DatabaseURL,
		"SENDWERK_ADMIN_TOKEN": c.AdminToken,
		"SENDWERK_SECRET_KEY":  c.SecretKey,
	} {
		if val == "" {
			errs = append(errs, fmt.Errorf("%s: must be set when SENDWERK_ENV=production", name))
		}
	}
	return errors.Join(errs...)
}

// MetricsOnAPI reports whether the API port serves /metrics: behind MetricsToken when one is
// set, openly only in development without a listener of its own. In production the process's
// internals are never open on the port the public reaches.
func (c *Config) MetricsOnAPI() bool {
	if c.MetricsToken != "" {
		return true
	}
	return c.Env != EnvProduction && c.MetricsAddr == ""
}

// SMTPListens reports whether the relay host has a listener.
func (c *Config) SMTPListens() bool { return c.SMTPAddr != "" || c.SMTPSAddr != "" }

// Embedded reports whether Sendwerk should run its own PostgreSQL.
func (c *Config) Embedded() bool { return c.DatabaseURL == "" }

func lookup(v Var, getenv func(string) string, readFile func(string) ([]byte, error)) (string, error) {
	val := getenv(v.Name)
	if !v.Secret {
		return val, nil
	}
	file := getenv(v.Name + "_FILE")
	if file == "" {
		return val, nil
	}
	if val != "" {
		return "", fmt.Errorf("set either %s or %s_FILE, not both", v.Name, v.Name)
	}
	b, err := readFile(file)
	if err != nil {
		// The path is the operator's own setting, so naming it helps; the content never appears.
		return "", fmt.Errorf("error reading %s_FILE: %w", v.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func minLen(v string, n int) error {
	if v != "" && len(v) < n {
		return fmt.Errorf("must be at least %d characters", n)
	}
	return nil
}

// checkKey accepts an empty value (generated later in development) or 32 bytes in base64.
func checkKey(v string) error {
	if v == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != 32 {
		return errors.New("must be base64 of exactly 32 bytes (e.g. the output of: openssl rand -base64 32)")
	}
	return nil
}

func parseDurations(dst *[]time.Duration, v string) error {
	*dst = nil
	for _, part := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a comma-separated list of positive durations like 1m,5m,1h", v)
		}
		*dst = append(*dst, d)
	}
	return nil
}

func parseKeys(dst *[]string, v string) error {
	*dst = nil
	for i, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if err := checkKey(k); err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
		*dst = append(*dst, k)
	}
	return nil
}

// parseOptionalBool reads a boolean whose default depends on SENDWERK_ENV: an empty value
// leaves *set false so Load fills the default in.
func parseOptionalBool(dst, set *bool, v string) error {
	if v == "" {
		return nil
	}
	*set = true
	return parseBool(dst, v)
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	*dst = b
	return nil
}

func parseInt64(dst *int64, v string, min int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		return fmt.Errorf("%q is not an integer of at least %d", v, min)
	}
	*dst = n
	return nil
}

func parseInt32(dst *int32, v string, min int64) error {
	var n int64
	if err := parseInt64(&n, v, min); err != nil {
		return err
	}
	if n > 1<<31-1 {
		return fmt.Errorf("%q is too large", v)
	}
	*dst = int32(n)
	return nil
}

func parseInt(dst *int, v string, min int64) error {
	var n int64
	if err := parseInt64(&n, v, min); err != nil {
		return err
	}
	*dst = int(n)
	return nil
}

func parseDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is not a positive duration like 30s or 5m", v)
	}
	*dst = d
	return nil
}

func parseDurationOrZero(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration like 2s, or 0", v)
	}
	*dst = d
	return nil
}

// parseServers reads "host:port" resolvers; a bare host gets port 53.
func parseServers(dst *[]string, v string) error {
	*dst = nil
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = strings.Trim(s, "[]"), "53"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return fmt.Errorf("%q is not a DNS server like 192.0.2.53:53", s)
		}
		*dst = append(*dst, net.JoinHostPort(host, port))
	}
	return nil
}

// parseNetworks reads IPs and CIDRs; an IP becomes a single-address prefix.
func parseNetworks(dst *[]netip.Prefix, v string) error {
	*dst = nil
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			*dst = append(*dst, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not an IP address or CIDR like 192.0.2.0/24", s)
		}
		*dst = append(*dst, p.Masked())
	}
	return nil
}

// checkLabel accepts one DNS label of letters, digits and hyphens (a DKIM selector,
// a TXT prefix).
func checkLabel(v string) error {
	if v == "" || len(v) > 63 || strings.HasPrefix(v, "-") || strings.HasSuffix(v, "-") {
		return fmt.Errorf("%q is not a DNS label (1-63 letters, digits and hyphens)", v)
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%q is not a DNS label (1-63 letters, digits and hyphens)", v)
		}
	}
	return nil
}

// checkHostName accepts an empty value or a dotted host name.
func checkHostName(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 253 || !strings.Contains(v, ".") {
		return fmt.Errorf("%q is not a host name like _spf.example.com", v)
	}
	for _, label := range strings.Split(v, ".") {
		if label == "" || len(label) > 63 || strings.ContainsFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return fmt.Errorf("%q is not a host name like _spf.example.com", v)
		}
	}
	return nil
}

// checkServerName accepts an empty value or a host name of letters, digits, hyphens and dots.
func checkServerName(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > 253 {
		return fmt.Errorf("%q is not a host name like smtp.example.com", v)
	}
	for _, label := range strings.Split(v, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") || strings.ContainsFunc(label, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
		}) {
			return fmt.Errorf("%q is not a host name like smtp.example.com", v)
		}
	}
	return nil
}

// parseListenAddr accepts "host:port", ":port" or "off" (which leaves dst empty).
func parseListenAddr(dst *string, v string) error {
	*dst = ""
	if v == "" || v == "off" {
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("%q is not a listen address like :587 or 127.0.0.1:2587 (or off)", v)
	}
	*dst = v
	return nil
}

// parseOrigins reads origins as browsers send them: scheme://host[:port], no path.
func parseOrigins(dst *[]string, v string) error {
	*dst = nil
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return fmt.Errorf("%q is not an origin like https://console.example.com", o)
			}
			o = u.Scheme + "://" + u.Host
		}
		*dst = append(*dst, o)
	}
	return nil
}

func parsePrefixes(dst *[]netip.Prefix, v string) error {
	*dst = nil
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR like 10.0.0.0/8", s)
		}
		*dst = append(*dst, p.Masked())
	}
	return nil
}
