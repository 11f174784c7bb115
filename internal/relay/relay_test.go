package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testHostname is the relay's name in tests; its self-signed certificate carries it.
const testHostname = "relay.sendwerk.test"

// sender is the connector's default sender: an smtp connector may always send from it.
const sender = "noreply@acme.example"

var (
	certOnce             sync.Once
	certFile, keyFile    string
	certRoots            *x509.CertPool
	errCert              error
	testSecretKey        = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	testMaxMessageBytes  = int64(256 << 10)
	testAdvertisedMaxLen = testMaxMessageBytes - receivedReserve
)

// testCert makes one self-signed certificate for the package (RSA key generation is slow).
func testCert(t testing.TB) (string, string, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relaycert")
		if err != nil {
			errCert = err
			return
		}
		certFile, keyFile, _, errCert = EnsureSelfSigned(dir, testHostname)
		if errCert != nil {
			return
		}
		pemBytes, err := os.ReadFile(certFile)
		if err != nil {
			errCert = err
			return
		}
		certRoots = x509.NewCertPool()
		certRoots.AppendCertsFromPEM(pemBytes)
	})
	require.NoError(t, errCert)
	return certFile, keyFile, certRoots
}

// testBundle is a relay on loopback over a real database and the real message pipeline,
// with one tenant, an smtp connector and a relay credential.
type testBundle struct {
	srv          *Server
	pool         *pgxpool.Pool
	creds        *connector.RelayCredentials
	connectors   *connector.Service
	domains      *sendingdomain.Service
	msgs         *message.Service
	suppressions *suppression.Service
	tenantID     string
	connector    *connector.Connector
	username     string
	password     string
	roots        *x509.CertPool
	logs         *syncBuffer
	registry     *prometheus.Registry
	// statements records what the pool runs, so a test can count a message's statements.
	statements *statementLog
}

// statementLog is a pgx tracer that records each statement the pool runs by its sqlc name
// ("SuppressionGet"), or its first line when it has none.
type statementLog struct {
	mu    sync.Mutex
	names []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	name, _, _ := strings.Cut(data.SQL, "\n")
	if rest, ok := strings.CutPrefix(name, "-- name: "); ok {
		name, _, _ = strings.Cut(rest, " ")
	}
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements run since the last take.
func (l *statementLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.names
	l.names = nil
	return out
}

// count is how many of names start with prefix.
func count(names []string, prefix string) int {
	n := 0
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			n++
		}
	}
	return n
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// setup starts a relay; adjust changes its configuration before it starts.
func setup(t testing.TB, adjust func(*Config)) *testBundle {
	t.Helper()
	ctx := context.Background()
	cf, kf, roots := testCert(t)
	b := &testBundle{roots: roots, logs: &syncBuffer{}, registry: prometheus.NewRegistry(), statements: &statementLog{}}
	poolCfg, err := pgxpool.ParseConfig(dbtest.NewDatabase(t))
	require.NoError(t, err)
	poolCfg.ConnConfig.Tracer = b.statements
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.pool = pool
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	box, err := secret.NewBox(testSecretKey)
	require.NoError(t, err)
	b.connectors = connector.NewService(pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true})
	b.domains, err = sendingdomain.NewService(pool, box, dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{"127.0.0.1:1"}}), &sendingdomain.Config{})
	require.NoError(t, err)
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	b.suppressions = suppression.NewService(pool)
	b.msgs = message.NewService(pool, riverClient, b.connectors, message.DomainSenders(b.domains), nil, message.Config{MaxMessageBytes: int(testMaxMessageBytes), Suppressions: b.suppressions})
	b.creds = connector.NewRelayCredentials(pool)

	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	b.tenantID = ten.ID
	b.connector, err = b.connectors.Create(ctx, ten.ID, connector.Input{
		Name: "own", Kind: connector.KindSMTP, Sender: connector.Sender{Email: sender, Name: "Acme"},
		SMTP: &connector.SMTPInput{Host: "127.0.0.1", Port: 2525, Security: "none"},
	})
	require.NoError(t, err)
	cred, password, err := b.creds.Create(ctx, ten.ID, b.connector.ID, "test")
	require.NoError(t, err)
	b.username, b.password = cred.Username, password

	reloader, err := NewCertReloader(cf, kf, logger)
	require.NoError(t, err)
	cfg := Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", Hostname: testHostname, TLS: reloader.TLSConfig(),
		MaxMessageBytes: testMaxMessageBytes, AuthFailureDelay: -1, Timeout: 10 * time.Second,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	b.srv, err = New(cfg, b.creds, b.msgs, logger, b.registry)
	require.NoError(t, err)
	require.NoError(t, b.srv.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.srv.Shutdown(ctx)
	})
	return b
}

func (b *testBundle) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: b.roots, ServerName: testHostname, MinVersion: tls.VersionTLS12}
}

// storedMessage is a message row as the pipeline stored it.
type storedMessage struct {
	ID, Source, Status, EnvelopeFrom, FromEmail, Subject string
	Recipients                                           []string
	MIME                                                 []byte
}

func (b *testBundle) messages(t *testing.T) []storedMessage {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT id, source, status, envelope_from, from_email, subject, recipients, mime FROM messages ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []storedMessage
	for rows.Next() {
		var m storedMessage
		require.NoError(t, rows.Scan(&m.ID, &m.Source, &m.Status, &m.EnvelopeFrom, &m.FromEmail, &m.Subject, &m.Recipients, &m.MIME))
		out = append(out, m)
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *testBundle) jobCount(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE kind = 'message_deliver'").Scan(&n))
	return n
}

// rawClient speaks SMTP line by line, for what a library client would not send.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	text *textproto.Conn
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	c := &rawClient{t: t, conn: conn, text: textproto.NewConn(conn)}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.expect(220)
	return c
}

func dialRawTLS(t *testing.T, addr string, cfg *tls.Config) *rawClient {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	require.NoError(t, err)
	c := &rawClient{t: t, conn: conn, text: textproto.NewConn(conn)}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.expect(220)
	return c
}

// reply reads one (possibly multi-line) reply.
func (c *rawClient) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.text.ReadResponse(0)
	var te *textproto.Error
	if err != nil && !asTextprotoError(err, &te) {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

func asTextprotoError(err error, te **textproto.Error) bool {
	e, ok := err.(*textproto.Error)
	if ok {
		*te = e
	}
	return ok
}

// cmd sends a line and returns the reply.
func (c *rawClient) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	require.NoError(c.t, c.text.PrintfLine(format, args...))
	return c.reply()
}

func (c *rawClient) expect(code int) string {
	c.t.Helper()
	got, msg := c.reply()
	require.Equal(c.t, code, got, msg)
	return msg
}

func (c *rawClient) expectCmd(code int, format string, args ...any) string {
	c.t.Helper()
	got, msg := c.cmd(format, args...)
	require.Equal(c.t, code, got, "%s: %s", fmt.Sprintf(format, args...), msg)
	return msg
}

// starttls upgrades the connection and greets again.
func (c *rawClient) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.expectCmd(220, "STARTTLS")
	tc := tls.Client(c.conn, cfg)
	require.NoError(c.t, tc.Handshake())
	c.conn, c.text = tc, textproto.NewConn(tc)
	c.expectCmd(250, "EHLO client.example")
}

// login authenticates with AUTH PLAIN.
func (c *rawClient) login(user, password string) {
	c.t.Helper()
	c.expectCmd(235, "AUTH PLAIN %s", plain(user, password))
}

func plain(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// session returns a raw client logged in over STARTTLS.
func (b *testBundle) session(t testing.TB) *rawClient {
	t.Helper()
	c := dialRaw(t, b.srv.Addr())
	c.expectCmd(250, "EHLO client.example")
	c.starttls(b.tlsConfig())
	c.login(b.username, b.password)
	return c
}

// data sends DATA, the message (dot-stuffed by textproto) and returns the final reply.
func (c *rawClient) data(msg string) (int, string) {
	c.t.Helper()
	c.expectCmd(354, "DATA")
	w := c.text.DotWriter()
	_, err := w.Write([]byte(msg))
	require.NoError(c.t, err)
	require.NoError(c.t, w.Close())
	return c.reply()
}

func testMessage(from, to, subject string) string {
	return "From: Acme <" + from + ">\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@acme.example>\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello from the ERP.\r\n"
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(msg)
}

// readAll reads replies until the connection closes, for pipelined exchanges.
func readLines(t *testing.T, conn net.Conn) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// count is the number of open connections from ip.
func (l *connLimiter) count(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[ip]
}

// runtimeMem samples the allocation counter.
type runtimeMem struct{ totalAlloc uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.totalAlloc = ms.TotalAlloc
}

// metricValue reads a counter or gauge (through a registry of its own).
func metricValue(m prometheus.Metric) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(single{m})
	families, err := reg.Gather()
	if err != nil || len(families) != 1 {
		return -1
	}
	got := families[0].GetMetric()[0]
	if c := got.GetCounter(); c != nil {
		return c.GetValue()
	}
	return got.GetGauge().GetValue()
}

// single collects one metric.
type single struct{ m prometheus.Metric }

func (s single) Describe(ch chan<- *prometheus.Desc) { ch <- s.m.Desc() }
func (s single) Collect(ch chan<- prometheus.Metric) { ch <- s.m }
