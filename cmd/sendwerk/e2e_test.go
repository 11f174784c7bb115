package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/logging"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	dbtest.Main(m)
}

const testAdminToken = "test-admin-token-0123456789"

// testBundle is one real server on 127.0.0.1:0 with its own database.
type testBundle struct {
	baseURL string
	dbURL   string
	pool    *pgxpool.Pool
	admin   *sendwerk.ClientWithResponses
	logs    *syncBuffer
	// smtpAddr and smtpsAddr are the relay host's listeners; empty unless the test set
	// SENDWERK_SMTP_ADDR / SENDWERK_SMTPS_ADDR (setup turns them off by default).
	smtpAddr, smtpsAddr string
	// metricsAddr is the SENDWERK_METRICS_ADDR listener's, when the test set one.
	metricsAddr string
	// devInbox and devDNS are the development mail catcher's and DNS server's addresses.
	devInbox, devDNS string
	// bounceAddr is the bounce listener's, when the test set SENDWERK_BOUNCE_SMTP_ADDR.
	bounceAddr string
	// stop ends the server the way SIGTERM does and returns what serve returned; the
	// test's cleanup calls it too (only the first call stops).
	stop func() error
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

func setup(t *testing.T, env map[string]string) *testBundle {
	t.Helper()
	dbURL := env["DATABASE_URL"] // a second server on another's database
	if dbURL == "" {
		dbURL = dbtest.NewDatabase(t)
	}
	vars := map[string]string{
		"DATABASE_URL":          dbURL,
		"SENDWERK_HTTP_ADDR":    "127.0.0.1:0",
		"SENDWERK_ADMIN_TOKEN":  testAdminToken,
		"SENDWERK_SECRET_KEY":   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"SENDWERK_AUTO_MIGRATE": "true",
		"SENDWERK_LOG_LEVEL":    "debug",
		"SENDWERK_DB_MAX_CONNS": "4",
		"SENDWERK_JOB_WORKERS":  "2",
		"SENDWERK_SMTP_ADDR":    "off",
		"SENDWERK_SMTPS_ADDR":   "off",
		// The development inbox and DNS have fixed default ports; tests that want them
		// set 127.0.0.1:0 (see dev_test.go).
		"SENDWERK_DEV_INBOX_ADDR": "off",
		"SENDWERK_DEV_DNS_ADDR":   "off",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] }, func(string) ([]byte, error) { return nil, io.EOF })
	require.NoError(t, err)

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listenAddrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, logging.New(logs, "json", "debug"), io.Discard, func(a listenAddrs) { ready <- a })
	}()
	var addrs listenAddrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in 30s")
	}
	var stopOnce sync.Once
	var stopErr error
	stop := func() error {
		stopOnce.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() { require.NoError(t, stop()) })
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := &testBundle{baseURL: "http://" + addrs.HTTP, dbURL: dbURL, pool: pool, logs: logs, smtpAddr: addrs.SMTP, smtpsAddr: addrs.SMTPS,
		metricsAddr: addrs.Metrics, devInbox: addrs.DevInbox, devDNS: addrs.DevDNS, stop: stop, bounceAddr: addrs.Bounce}
	b.admin = b.client(t, testAdminToken)
	return b
}

func (b *testBundle) client(t *testing.T, token string) *sendwerk.ClientWithResponses {
	t.Helper()
	c, err := sendwerk.NewClientWithResponses(b.baseURL, sendwerk.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	require.NoError(t, err)
	return c
}

// newTenantKey creates a tenant and a key with the given scopes, returning the tenant id,
// the key's id and its secret.
func (b *testBundle) newTenantKey(t *testing.T, name string, scopes ...sendwerk.Scope) (string, string, string) {
	t.Helper()
	ctx := context.Background()
	tr, err := b.admin.CreateTenantWithResponse(ctx, sendwerk.CreateTenantJSONRequestBody{Name: name})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, tr.StatusCode(), string(tr.Body))
	kr, err := b.admin.CreateTenantApiKeyWithResponse(ctx, tr.JSON201.Id, sendwerk.ApiKeyCreate{Name: "k", Scopes: scopes})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, kr.StatusCode(), string(kr.Body))
	return tr.JSON201.Id, kr.JSON201.Id, kr.JSON201.Secret
}

// rawResponse is a response read whole, for the cases the typed client cannot express.
type rawResponse struct {
	status  int
	header  http.Header
	body    []byte
	problem sendwerk.Problem
}

func (b *testBundle) do(t *testing.T, method, path, token, contentType, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, b.baseURL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := rawResponse{status: resp.StatusCode, header: resp.Header, body: data}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		require.NoError(t, json.Unmarshal(data, &r.problem), string(data))
	}
	return r
}

func fieldsOf(p sendwerk.Problem) map[string]string {
	out := map[string]string{}
	if p.Errors != nil {
		for _, e := range *p.Errors {
			out[e.Field] = e.Message
		}
	}
	return out
}
