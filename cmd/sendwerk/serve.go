package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/httpapi"
	"github.com/sendwerk/sendwerk/internal/jobs"
	"github.com/sendwerk/sendwerk/internal/logging"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/metrics"
	"github.com/sendwerk/sendwerk/internal/pgembed"
	"github.com/sendwerk/sendwerk/internal/platform"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// embeddedDatabase is the database the embedded cluster serves Sendwerk from.
const embeddedDatabase = "sendwerk"

func runServe(ctx context.Context, stdout, stderr io.Writer) int {
	cfg, err := config.LoadEnv()
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk: invalid configuration:\n%v\n", err)
		return 2
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	slog.SetDefault(logger)
	setGCPercent()
	started := false
	if err := serve(ctx, cfg, logger, stdout, func(listenAddrs) { started = true }); err != nil {
		if !started {
			// The cause first, on a line of its own, whatever the log format.
			fmt.Fprintf(stderr, "sendwerk: cannot start: %v\n", err)
			return 1
		}
		logger.Error("sendwerk stopped", "error", err)
		return 1
	}
	return 0
}

func runMigrate(ctx context.Context, stdout, stderr io.Writer) int {
	cfg, err := config.LoadEnv()
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk: invalid configuration:\n%v\n", err)
		return 2
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	pool, closeDB, _, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		logger.Error("migrate failed", "error", err)
		return 1
	}
	defer closeDB()
	if err := store.Migrate(ctx, pool, logger); err != nil {
		logger.Error("migrate failed", "error", err)
		return 1
	}
	fmt.Fprintln(stdout, "database is up to date")
	return 0
}

// defaultGCPercent is the server's garbage-collection target when GOGC is unset. A server
// allocates short-lived request, message and SQL buffers over a live heap of a few tens of
// MB; at Go's default of 100 the collector took about 8 % of the server's CPU in `make
// bench`, and 200 halves the collections for roughly one more live heap of memory.
const defaultGCPercent = 200

// setGCPercent applies defaultGCPercent unless the operator set GOGC, which wins as usual.
func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// serve runs until ctx ends. onReady, when set, learns the bound addresses once they listen.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer, onReady func(listenAddrs)) error {
	// Operator kit: ports first, so a conflict is the first and only error; then the metrics
	// registry and the delivery metrics the deliverer reports to.
	lns, err := listenFirst(cfg)
	if err != nil {
		return err
	}
	defer lns.close()
	reg := prometheus.NewRegistry()
	deliveryMetrics, err := metrics.NewDeliveries(reg)
	if err != nil {
		return err
	}
	groupSizes, err := metrics.NewSubmitGroups(reg)
	if err != nil {
		return err
	}

	generated, err := ensureDevSecrets(cfg)
	if err != nil {
		return err
	}
	pool, closeDB, dbDone, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	if cfg.AutoMigrate {
		if err := store.Migrate(ctx, pool, logger); err != nil {
			return err
		}
	}
	// Development mail catcher and DNS (dev.go); they set the platform relay and the
	// resolvers before the services below read them. Off in production.
	dev, err := startDevServices(cfg, logger)
	if err != nil {
		return err
	}
	defer dev.Close()
	tenants := tenant.NewServiceWith(pool, tenant.Options{CacheTTL: cfg.CacheTTL})
	connectors, err := newConnectorService(pool, cfg)
	if err != nil {
		return err
	}
	domains, err := newDomainService(pool, cfg)
	if err != nil {
		return err
	}
	dev.publish(domains)
	go func() {
		for _, w := range dnsWarnings(ctx, cfg) {
			logger.Warn(w)
		}
	}()
	senders := message.DomainSenders(domains)
	pools := message.NewPools(&delivery.PoolConfig{MaxConns: cfg.SMTPPoolSize, IdleTimeout: cfg.SMTPPoolIdle})
	defer pools.Close()
	suppressions := suppression.NewService(pool)
	bounces, returnPaths, err := newBounceService(pool, cfg, suppressions, logger)
	if err != nil {
		return err
	}
	deliverer := message.NewDeliverer(pool, connectors, senders, pools, logger, &message.DelivererOptions{Suppressions: suppressions, ReturnPaths: returnPaths})
	deliverer.Observer = deliveryMetrics
	maxAttempts := len(cfg.RetrySchedule) + 1
	whBox, err := secret.NewBox(cfg.SecretKey, cfg.PreviousSecretKeys...)
	if err != nil {
		return fmt.Errorf("SENDWERK_SECRET_KEY: %w", err)
	}
	whCfg := webhookConfig(cfg)
	deliverWorker := message.NewDeliverWorker(deliverer, message.DeliverConfig{RetrySchedule: cfg.RetrySchedule, Timeout: cfg.AttemptTimeout})
	riverClient, err := jobs.NewClient(pool, &jobs.Config{
		Workers: cfg.JobWorkers, FetchCooldown: cfg.JobFetchCooldown,
		RescueAfter: cfg.JobRescueAfter, ReconcileInterval: cfg.ReconcileInterval,
	}, jobs.Deps{
		Tenants: tenants, Logger: logger, Domains: domains, DomainChecksInFlight: cfg.DomainChecksInFlight,
		Deliver:         deliverWorker,
		Retention:       message.NewRetentionWorker(pool, cfg.BodyRetention),
		DeliveryWorkers: cfg.DeliveryWorkers,
		Webhooks:        webhook.NewDeliverWorker(pool, whBox, whCfg, logger),
		WebhookWorkers:  cfg.WebhookWorkers,
		EventRetention:  event.NewRetentionWorker(pool, cfg.EventRetention),
		Reconcile:       message.NewReconcileWorker(pool, message.ReconcileConfig{Settle: cfg.JobRescueAfter, Window: cfg.JobRescueAfter + 10*cfg.ReconcileInterval, MaxAttempts: maxAttempts}),
	})
	if err != nil {
		return err
	}
	webhooks := webhook.NewService(pool, whBox, riverClient, whCfg)
	direct := message.NewDirect(deliverWorker, message.DirectConfig{Slots: cfg.DirectAttempts, AttemptedBy: riverClient.ID()}, logger)
	messages := message.NewService(pool, riverClient, connectors, senders, deliverer, message.Config{
		MaxMessageBytes: int(cfg.MaxMessageBytes), MaxAttempts: maxAttempts,
		Committers: committers(cfg.SubmitCommitters), Suppressions: suppressions, GroupSizeFunc: groupSizes, Tenants: tenants,
		Direct: direct,
	})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(domains.Collectors()...)
	reg.MustRegister(metrics.NewQueue(pool, logger))
	// The relay host binds its ports before River starts: a conflict stops start-up cleanly.
	relayCredentials := connector.NewRelayCredentialsWith(pool, cfg.CacheTTL)
	tenants.OnDelete(func(tenantID string) {
		connectors.ForgetTenant(tenantID)
		relayCredentials.ForgetAll()
		domains.ForgetDomains()
	})
	relayServer, selfSigned, err := startRelay(cfg, logger, reg, relayCredentials, messages)
	if err != nil {
		return err
	}
	if relayServer != nil {
		defer relayServer.Close()
	}
	// Not ctx: River cancels the jobs in flight when its start context ends, and a stop
	// must let deliveries finish first (stopJobs).
	if err := riverClient.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("error starting job workers: %w", err)
	}
	// A return before the orderly stop below stops River first: the connections it holds
	// would keep the pool's Close (deferred above) waiting for ever.
	jobsStopped := false
	defer func() {
		if !jobsStopped {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = direct.Stop(sctx, hardStopGrace)
			_ = stopJobs(sctx, riverClient, logger)
		}
	}()
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	dispatchDone := make(chan struct{})
	go func() {
		defer close(dispatchDone)
		webhook.NewDispatcher(pool, riverClient, whCfg, 0, logger).Run(dispatchCtx)
	}()
	defer func() { stopDispatch(); <-dispatchDone }()
	dashboard, err := jobs.NewDashboard(ctx, riverClient, logger)
	if err != nil {
		return err
	}
	facts := platformFacts(cfg)
	if changed, err := platform.Publish(ctx, pool, facts, time.Now()); err != nil {
		return err
	} else if len(changed) > 0 {
		logger.Info("platform facts changed; every tenant gets a platform.changed event", "changed", changed)
	}
	handler, err := httpapi.New(httpapi.Options{
		Pool: pool, Tenants: tenants, Connectors: connectors, Domains: domains, Messages: messages, Suppressions: suppressions, Bounces: bounces, RelayCredentials: relayCredentials, RelayHost: relayHostInfo(cfg, relayServer), Webhooks: webhooks, Platform: facts, AdminToken: cfg.AdminToken, APIKeyRequestsPerSec: cfg.APIKeyRequestsPerSec, MaxBodyBytes: cfg.MaxBodyBytes,
		TrustedProxies: cfg.TrustedProxies, Registry: reg, Logger: logger, JobDashboard: dashboard,
		CORSOrigins: cfg.CORSOrigins, MetricsHandler: metricsOnAPI(cfg, reg),
	})
	if err != nil {
		return err
	}
	bounceListener, err := startBounceListener(cfg, bounces)
	if err != nil {
		return err
	}
	if bounceListener != nil {
		defer func() { _ = bounceListener.Close() }()
	}
	handler = httpapi.DevElements(handler, cfg.Env == config.EnvDevelopment)
	ln := lns.http
	if lns.metrics != nil {
		metricsSrv := serveMetrics(lns.metrics, reg, cfg.MetricsPprof)
		defer func() { _ = metricsSrv.Close() }()
	}
	srv := &http.Server{
		Handler: dev.wrap(handler), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("sendwerk serving", "http", ln.Addr().String())
	addrs := listenAddrs{HTTP: ln.Addr().String(), SelfSignedCert: selfSigned}
	if lns.metrics != nil {
		addrs.Metrics = lns.metrics.Addr().String()
	}
	if relayServer != nil {
		addrs.SMTP, addrs.SMTPS = relayServer.Addr(), relayServer.TLSAddr()
	}
	if bounceListener != nil {
		addrs.Bounce = bounceListener.Addr()
	}
	dev.addrs(&addrs)
	printBanner(stdout, cfg, addrs, generated)
	if onReady != nil {
		onReady(addrs)
	}

	var cause error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("error serving http: %w", err)
	case <-dbDone:
		cause = errors.New("the embedded postgres exited unexpectedly; see its log lines above")
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// SMTP sessions in the middle of a message finish it while HTTP drains and deliveries
	// in flight finish; River fetches no new jobs meanwhile.
	var errSMTP, errJobs error
	smtpDone, jobsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(smtpDone)
		if relayServer != nil {
			errSMTP = relayServer.Shutdown(sctx)
		}
	}()
	jobsStopped = true
	go func() {
		defer close(jobsDone)
		errJobs = stopJobs(sctx, riverClient, logger)
	}()
	// Direct first attempts stop with River's: submissions committed meanwhile go through
	// the deliveries queue, for whichever process fetches next.
	var errDirect error
	directDone := make(chan struct{})
	go func() {
		defer close(directDone)
		errDirect = direct.Stop(sctx, hardStopGrace)
	}()
	errHTTP := srv.Shutdown(sctx)
	<-smtpDone
	<-jobsDone
	<-directDone
	return errors.Join(cause, errHTTP, errSMTP, errJobs, errDirect)
}

// hardStopGrace is how long cancelled jobs get to record what they know after a stop
// timed out.
const hardStopGrace = 10 * time.Second

// stopJobs stops fetching jobs and waits for the ones in flight until ctx ends; only then
// it cancels what still runs (a cancelled delivery records an unknown outcome and is
// retried by whichever process picks its job up next).
func stopJobs(ctx context.Context, client interface {
	Stop(context.Context) error
	StopAndCancel(context.Context) error
}, logger *slog.Logger) error {
	err := client.Stop(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	logger.Warn("jobs still running at the shutdown timeout; cancelling them")
	hctx, cancel := context.WithTimeout(context.Background(), hardStopGrace)
	defer cancel()
	return client.StopAndCancel(hctx)
}

// metricsOnAPI is the handler of /metrics on the API port, or nil when it is not served there.
func metricsOnAPI(cfg *config.Config, reg *prometheus.Registry) http.Handler {
	if !cfg.MetricsOnAPI() {
		return nil
	}
	return metrics.Handler(reg, cfg.MetricsToken)
}

// metricsWhere says where Prometheus finds /metrics, or why nowhere.
func metricsWhere(cfg *config.Config, addrs listenAddrs, base string) string {
	switch {
	case addrs.Metrics != "":
		return "http://" + addrs.Metrics + "/metrics"
	case cfg.MetricsOnAPI() && cfg.MetricsToken != "":
		return base + "/metrics (with the bearer token of SENDWERK_METRICS_TOKEN)"
	case cfg.MetricsOnAPI():
		return base + "/metrics"
	}
	return "off (production: set SENDWERK_METRICS_ADDR, or SENDWERK_METRICS_TOKEN to serve them on this port)"
}

// newConnectorService builds the connector service with the operator's policy.
func newConnectorService(pool *pgxpool.Pool, cfg *config.Config) (*connector.Service, error) {
	box, err := secret.NewBox(cfg.SecretKey, cfg.PreviousSecretKeys...)
	if err != nil {
		return nil, fmt.Errorf("SENDWERK_SECRET_KEY: %w", err)
	}
	policy := connector.Policy{
		AllowNoAuth: cfg.AllowUnauthenticatedUpstreams, AllowPlaintext: cfg.AllowPlaintextUpstreams,
		AllowPrivateAddresses: cfg.AllowPrivateUpstreams, BreakerThreshold: cfg.BreakerThreshold, CacheTTL: cfg.CacheTTL,
	}
	if cfg.UpstreamCAFile != "" {
		roots, err := loadRoots(cfg.UpstreamCAFile)
		if err != nil {
			return nil, err
		}
		policy.RootCAs = roots
	}
	if cfg.PlatformSMTPURL != "" {
		platform, err := connector.ParsePlatformURL(cfg.PlatformSMTPURL)
		if err != nil {
			return nil, fmt.Errorf("SENDWERK_PLATFORM_SMTP_URL: %w", err)
		}
		platform.RootCAs = policy.RootCAs
		policy.Platform = platform
	}
	return connector.NewService(pool, box, policy), nil
}

// newDomainService builds the sender-domain service with the platform's DNS settings.
func newDomainService(pool *pgxpool.Pool, cfg *config.Config) (*sendingdomain.Service, error) {
	box, err := secret.NewBox(cfg.SecretKey, cfg.PreviousSecretKeys...)
	if err != nil {
		return nil, fmt.Errorf("SENDWERK_SECRET_KEY: %w", err)
	}
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: cfg.DNSServers, Timeout: cfg.DNSTimeout})
	return sendingdomain.NewService(pool, box, resolver, &sendingdomain.Config{
		CacheTTL: cfg.CacheTTL, Selector: cfg.DKIMSelector, VerificationPrefix: cfg.VerificationPrefix,
		SPFInclude: cfg.SPFInclude, SPFNetworks: cfg.SPFNetworks,
		GracePeriod: cfg.DomainGracePeriod, GraceChecks: cfg.DomainGraceChecks,
		IntervalPending: cfg.DomainCheckPending, PendingFor: cfg.DomainCheckPendingFor, IntervalVerified: cfg.DomainCheckVerified,
		ManualCheckInterval: cfg.DomainManualCheckInterval,
		KeyOverlap:          cfg.DKIMKeyOverlap, RotationNotice: cfg.DKIMRotationNotice,
	})
}

// dnsWarnings finds DNS settings that make domain checks report less than they could:
// SPF records with IP macros cannot be evaluated without the platform's addresses, and a
// DNS server that does not recurse answers delegated names (a _domainkey sub-zone) with
// referrals, which checks report as dns.not_recursive.
func dnsWarnings(ctx context.Context, cfg *config.Config) []string {
	var out []string
	if cfg.SPFInclude != "" && len(cfg.SPFNetworks) == 0 {
		out = append(out, "SENDWERK_SPF_INCLUDE is set without SENDWERK_SPF_IPS: SPF records whose verdict depends on the sending address (IP macros such as %{i} or %{ir}) cannot be evaluated and are reported as spf.indeterminate; set SENDWERK_SPF_IPS to the relay's sending addresses")
	}
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: cfg.DNSServers, Timeout: cfg.DNSTimeout, Attempts: 1})
	if err := resolver.CheckRecursion(ctx); err != nil {
		out = append(out, fmt.Sprintf("%v: domain checks need recursive resolvers (set SENDWERK_DNS_SERVERS); delegated records will be reported as dns.not_recursive", err))
	}
	return out
}

// loadRoots returns the system roots plus the certificates in file.
func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("SENDWERK_UPSTREAM_CA_FILE: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("SENDWERK_UPSTREAM_CA_FILE: %s holds no PEM certificate", file)
	}
	return roots, nil
}

// openDatabase connects to DATABASE_URL, or starts the embedded cluster when it is unset.
// The returned func closes the pool and stops the cluster; the channel closes if the
// embedded cluster dies (nil for an external database).
func openDatabase(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*pgxpool.Pool, func(), <-chan struct{}, error) {
	poolCfg := &store.PoolConfig{MaxConns: cfg.DBMaxConns}
	if !cfg.Embedded() {
		pool, err := store.NewPool(ctx, cfg.DatabaseURL, poolCfg)
		if err != nil {
			return nil, nil, nil, err
		}
		return pool, pool.Close, nil, nil
	}
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(cfg.DataDir, "postgres"), Logger: logger})
	if err != nil {
		return nil, nil, nil, err
	}
	stopCluster := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(sctx); err != nil {
			logger.Error("error stopping embedded postgres", "error", err)
		}
	}
	if err := ensureDatabase(ctx, cluster); err != nil {
		stopCluster()
		return nil, nil, nil, err
	}
	pool, err := store.NewPool(ctx, cluster.URL(embeddedDatabase), poolCfg)
	if err != nil {
		stopCluster()
		return nil, nil, nil, err
	}
	return pool, func() { pool.Close(); stopCluster() }, cluster.Done(), nil
}

func ensureDatabase(ctx context.Context, cluster *pgembed.Cluster) error {
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("error connecting to embedded postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", embeddedDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("error checking embedded database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+embeddedDatabase); err != nil {
		return fmt.Errorf("error creating embedded database: %w", err)
	}
	return nil
}

// ensureDevSecrets fills an unset admin token and secret key from files in the data dir,
// generating them on first start, so a development server keeps its credentials across
// restarts. Production never gets here with them unset (config.Validate). It reports whether
// the admin token is the data dir's (and so may be printed).
func ensureDevSecrets(cfg *config.Config) (devToken bool, err error) {
	if cfg.AdminToken == "" {
		devToken = true
		cfg.AdminToken, err = loadOrCreate(filepath.Join(cfg.DataDir, "admin-token"), func() string {
			return "swadmin_" + randomHex(24)
		})
		if err != nil {
			return false, err
		}
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey, err = loadOrCreate(filepath.Join(cfg.DataDir, "secret-key"), func() string {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			return base64.StdEncoding.EncodeToString(b)
		})
	}
	return devToken, err
}

func loadOrCreate(path string, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("error reading %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("error creating data dir: %w", err)
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("error writing %s: %w", path, err)
	}
	return v, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// printBanner tells a developer where the server is and how to call it. The admin token is
// printed only when it lives in the data dir (a development server); a configured token is
// the operator's secret and never printed.
func printBanner(w io.Writer, cfg *config.Config, addrs listenAddrs, devToken bool) {
	addr := addrs.HTTP
	base := "http://" + addr
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "127.0.0.1" || host == "::1") && strings.HasPrefix(cfg.HTTPAddr, "localhost") {
		base = "http://localhost:" + port
	}
	fmt.Fprintf(w, "\nSendwerk is serving on %s\n", base)
	if devToken {
		fmt.Fprintf(w, "  admin token: %s\n  (kept in %s; set SENDWERK_ADMIN_TOKEN to choose your own)\n",
			cfg.AdminToken, filepath.Join(cfg.DataDir, "admin-token"))
	}
	fmt.Fprintf(w, "  API contract: %s/openapi.yaml\n", base)
	fmt.Fprintf(w, "  API reference: %s/docs\n", base)
	fmt.Fprintf(w, "  job dashboard: %s/riverui (any user name, the admin token as password)\n", base)
	fmt.Fprintf(w, "  metrics: %s\n", metricsWhere(cfg, addrs, base))
	printDevBanner(w, cfg, addrs, base)
	if addrs.SMTP != "" || addrs.SMTPS != "" {
		fmt.Fprintf(w, "  SMTP relay host: %s; log in with a connector's relay credentials (POST /v1/connectors/{connector_id}/relay-credentials)\n", smtpEndpoints(addrs))
	}
	if addrs.SelfSignedCert != "" {
		fmt.Fprintf(w, "  SMTP TLS certificate: self-signed, %s (development only: mail servers must skip verification)\n", addrs.SelfSignedCert)
	}
	tokenLine := "    ADMIN_TOKEN=<your SENDWERK_ADMIN_TOKEN>\n"
	if devToken {
		tokenLine = fmt.Sprintf("    ADMIN_TOKEN=$(cat %s)\n", filepath.Join(cfg.DataDir, "admin-token"))
	}
	fmt.Fprintf(w, "  next: create a tenant (the README's quickstart goes on from there):\n%s    curl -s -X POST %s/v1/tenants -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'Content-Type: application/json' -d '{\"name\":\"Acme\"}'\n\n", tokenLine, base)
}

// smtpEndpoints describes the SMTP listeners for the banner.
func smtpEndpoints(a listenAddrs) string {
	var parts []string
	if a.SMTP != "" {
		parts = append(parts, a.SMTP+" (STARTTLS)")
	}
	if a.SMTPS != "" {
		parts = append(parts, a.SMTPS+" (implicit TLS)")
	}
	return strings.Join(parts, ", ")
}

// committers maps the setting (0 = off) to message.Config's (negative = off).
func committers(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
