package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/dnstest"
)

func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestMetricsAfterTraffic sends mail through the API and the relay host, checks a domain, and
// reads "is mail flowing" from the metrics listener of its own (SENDWERK_METRICS_ADDR).
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	zone := dnstest.NewServer(t, "")
	r := setupRelayE2E(t, map[string]string{"SENDWERK_METRICS_ADDR": "127.0.0.1:0", "SENDWERK_DNS_SERVERS": zone.Addr(), "SENDWERK_DNS_TIMEOUT": "300ms"})
	require.NotEmpty(t, r.metricsAddr)

	sent := r.send(t, simpleMessage("jane@example.org"))
	require.Equal(t, 202, sent.StatusCode(), string(sent.Body))
	r.waitStatus(t, sent.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
	require.NoError(t, r.goMail(t, false, r.cred.Password).DialAndSend(relayMessage(t, "noreply@acme.example", "Over SMTP", "joe@example.org")))
	require.ErrorContains(t, r.goMail(t, false, "wrong-password").DialAndSend(relayMessage(t, "noreply@acme.example", "Refused", "joe@example.org")), "535")
	later := simpleMessage("later@example.org")
	later.SendAt = ptr(time.Now().Add(time.Hour))
	require.Equal(t, 202, r.send(t, later).StatusCode())
	require.Eventually(t, func() bool { return len(r.up.Messages()) == 2 }, 15*time.Second, 50*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the second attempt's outcome is recorded after the upstream's reply

	dom, err := r.c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "acme.example"})
	require.NoError(t, err)
	require.Equal(t, 201, dom.StatusCode(), string(dom.Body))
	chk, err := r.c.CheckDomainWithResponse(ctx, dom.JSON201.Id)
	require.NoError(t, err)
	require.Equal(t, 200, chk.StatusCode(), string(chk.Body))

	status, body := scrape(t, "http://"+r.metricsAddr+"/metrics", "")
	require.Equal(t, 200, status)
	for _, want := range []string{
		`sendwerk_delivery_attempts_total{class="delivered",code="delivered",smtp_code="250"} 2`,
		`sendwerk_delivery_attempt_duration_seconds_count{class="delivered"} 2`,
		`sendwerk_delivery_latency_seconds_count 2`,
		`sendwerk_queue_jobs{queue="deliveries",state="scheduled"} 1`,
		`sendwerk_queue_jobs{queue="deliveries",state="available"} 0`,
		`sendwerk_queue_oldest_available_seconds{queue="deliveries"} 0`,
		`sendwerk_domains{status="pending"} 1`,
		`sendwerk_domain_checks_total{outcome="fail",trigger="manual"} 1`,
		`sendwerk_smtp_connections_total{listener="submission"} 2`,
		`sendwerk_smtp_auth_total{result="ok"} 1`,
		`sendwerk_smtp_auth_total{result="wrong_password"} 1`,
		`sendwerk_smtp_messages_total{result="accepted"} 1`,
		`sendwerk_http_requests_total{method="POST",route="/v1/messages",status="202"} 2`,
	} {
		require.Contains(t, body, want+"\n")
	}
	// The scheduler may have checked the new domain too.
	require.Regexp(t, `\nsendwerk_domain_check_results_total\{check="ownership",code="ownership.token_missing",status="fail"\} [12]\n`, body)
	status, _ = scrape(t, r.baseURL+"/metrics", "")
	require.Equal(t, 404, status, "with a listener of its own, /metrics is not on the API port")
	checkMetricsDocs(t, body)
}

// metricFamily matches a Sendwerk metric name, without a histogram's suffixes.
var metricFamily = regexp.MustCompile(`\bsendwerk_[a-z_]+?(?:_bucket|_count|_sum)?\b`)

func families(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range metricFamily.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			m = strings.TrimSuffix(m, suffix)
		}
		out[m] = true
	}
	return out
}

// checkMetricsDocs holds docs/metrics.md and the Grafana dashboard to a live scrape: every
// family served is documented, every documented one is served (but two that need events this
// test does not cause), and the dashboard queries only documented families.
func checkMetricsDocs(t *testing.T, scraped string) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/metrics.md")
	require.NoError(t, err)
	dashboard, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	require.NoError(t, err)
	served, documented := families(scraped), families(string(doc))
	for f := range served {
		require.True(t, documented[f], "%s is served but not in docs/metrics.md", f)
	}
	notCaused := map[string]bool{"sendwerk_domain_status_changes_total": true, "sendwerk_smtp_connections_refused_total": true}
	for f := range documented {
		require.True(t, served[f] || notCaused[f], "docs/metrics.md documents %s, which the server does not serve", f)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(dashboard, &d))
	queried := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for f := range families(tg.Expr) {
				require.True(t, documented[f], "the dashboard queries %s, which docs/metrics.md does not document", f)
				queried++
			}
		}
	}
	require.Greater(t, queried, 15)
}

// TestMetricsInProduction: the API port serves /metrics only behind SENDWERK_METRICS_TOKEN.
func TestMetricsInProduction(t *testing.T) {
	t.Parallel()
	closed := setup(t, map[string]string{"SENDWERK_ENV": "production"})
	status, _ := scrape(t, closed.baseURL+"/metrics", "")
	require.Equal(t, 404, status)

	const token = "metrics-token-0123456789"
	b := setup(t, map[string]string{"SENDWERK_ENV": "production", "SENDWERK_METRICS_TOKEN": token})
	status, _ = scrape(t, b.baseURL+"/metrics", "")
	require.Equal(t, 401, status)
	status, _ = scrape(t, b.baseURL+"/metrics", "not-the-token-at-all-x")
	require.Equal(t, 401, status)
	status, body := scrape(t, b.baseURL+"/metrics", token)
	require.Equal(t, 200, status)
	require.Contains(t, body, "sendwerk_queue_jobs{")
}

// TestStartupErrorNamesTheCause occupies the ports sendwerk serve wants and checks that it
// stops with the cause first, not buried in job-queue errors.
func TestStartupErrorNamesTheCause(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
	addr := taken.Addr().String()
	base := map[string]string{"DATABASE_URL": dbtest.NewDatabase(t), "SENDWERK_ADMIN_TOKEN": testAdminToken,
		"SENDWERK_SECRET_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "SENDWERK_DATA_DIR": t.TempDir()}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}

	t.Run("HTTP", func(t *testing.T) {
		r := runCLI(t, base["SENDWERK_DATA_DIR"], with("SENDWERK_HTTP_ADDR", addr, "SENDWERK_SMTP_ADDR", "off", "SENDWERK_SMTPS_ADDR", "off"), "serve")
		require.Equal(t, 1, r.code, r.stderr)
		first, _, _ := strings.Cut(r.stderr, "\n")
		require.Equal(t, "sendwerk: cannot start: SENDWERK_HTTP_ADDR="+addr+": the address is already in use: another process (or another sendwerk) listens there; stop it or choose another address", first)
		require.NotContains(t, r.stderr, "level=", "nothing else was started, nothing else is logged")
	})
	t.Run("Metrics", func(t *testing.T) {
		r := runCLI(t, base["SENDWERK_DATA_DIR"], with("SENDWERK_HTTP_ADDR", "127.0.0.1:0", "SENDWERK_METRICS_ADDR", addr, "SENDWERK_SMTP_ADDR", "off", "SENDWERK_SMTPS_ADDR", "off"), "serve")
		require.Equal(t, 1, r.code, r.stderr)
		require.True(t, strings.HasPrefix(r.stderr, "sendwerk: cannot start: SENDWERK_METRICS_ADDR="+addr+": the address is already in use"), r.stderr)
	})
	t.Run("SMTP", func(t *testing.T) {
		r := runCLI(t, base["SENDWERK_DATA_DIR"], with("SENDWERK_HTTP_ADDR", "127.0.0.1:0", "SENDWERK_SMTP_ADDR", addr, "SENDWERK_SMTPS_ADDR", "off", "SENDWERK_LOG_LEVEL", "info"), "serve")
		require.Equal(t, 1, r.code, r.stderr)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		require.Regexp(t, `^sendwerk: cannot start: SENDWERK_SMTP_ADDR/SENDWERK_SMTPS_ADDR: error listening for SMTP submission on `+addr+`: .*address already in use`, lines[len(lines)-1])
		require.NotContains(t, r.stderr, "level=ERROR", "the job queue never started, so no job errors surround the cause")
	})
}

func TestBannerSaysWhereMetricsAre(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	banner := func(cfg *config.Config, addrs listenAddrs) string {
		buf.Reset()
		addrs.HTTP = "127.0.0.1:8080"
		printBanner(&buf, cfg, addrs, false)
		return buf.String()
	}
	require.Contains(t, banner(&config.Config{HTTPAddr: "localhost:8080"}, listenAddrs{}), "  metrics: http://localhost:8080/metrics\n")
	require.Contains(t, banner(&config.Config{HTTPAddr: "localhost:8080", MetricsAddr: "127.0.0.1:0"}, listenAddrs{Metrics: "127.0.0.1:9464"}), "  metrics: http://127.0.0.1:9464/metrics\n")
	require.Contains(t, banner(&config.Config{Env: config.EnvProduction, HTTPAddr: ":8080", MetricsToken: "metrics-token-0123"}, listenAddrs{}), "/metrics (with the bearer token of SENDWERK_METRICS_TOKEN)\n")
	require.Contains(t, banner(&config.Config{Env: config.EnvProduction, HTTPAddr: ":8080"}, listenAddrs{}), "  metrics: off (production: set SENDWERK_METRICS_ADDR")
}

// TestListenErrorsSayWhatToDo: the words for the two listen failures an operator meets
// (the tests run as root, so a forbidden port is simulated with the error the kernel gives).
func TestListenErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	bind := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	require.EqualError(t, listenError("SENDWERK_HTTP_ADDR", ":80", bind(syscall.EACCES)),
		"SENDWERK_HTTP_ADDR=:80: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE (see docs/deploy.md)")
	require.EqualError(t, listenError("SENDWERK_METRICS_ADDR", ":9464", bind(syscall.EADDRINUSE)),
		"SENDWERK_METRICS_ADDR=:9464: the address is already in use: another process (or another sendwerk) listens there; stop it or choose another address")
	require.ErrorContains(t, listenError("SENDWERK_HTTP_ADDR", "203.0.113.1:80", bind(syscall.EADDRNOTAVAIL)),
		"SENDWERK_HTTP_ADDR=203.0.113.1:80: cannot listen: ")
}

// TestProfilerOnlyWhenAsked: the metrics listener serves Go's profiler only with
// SENDWERK_METRICS_PPROF, and /metrics either way.
func TestProfilerOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, withPprof := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := serveMetrics(ln, prometheus.NewRegistry(), withPprof)
		t.Cleanup(func() { _ = srv.Close() })
		base := "http://" + ln.Addr().String()
		code, _ := scrape(t, base+"/metrics", "")
		require.Equal(t, http.StatusOK, code)
		code, body := scrape(t, base+"/debug/pprof/", "")
		if !withPprof {
			require.Equal(t, http.StatusNotFound, code)
			continue
		}
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "goroutine")
	}
}
