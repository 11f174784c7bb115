package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// dbProxy stands between a server and PostgreSQL on loopback TCP, so a test can take the
// database away (every connection cut, new ones refused) and give it back.
type dbProxy struct {
	ln     net.Listener
	target string // unix socket path
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

// newDBProxy proxies the database at dbURL and returns the URL to give the server.
func newDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	require.NotEmpty(t, q.Get("host"), "the test cluster listens on a unix socket")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{ln: ln, target: filepath.Join(q.Get("host"), ".s.PGSQL."+q.Get("port")), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go p.accept()
	q.Del("host")
	q.Del("port")
	u.Host = ln.Addr().String()
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *dbProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close() // like a database that is not there: the connection ends at once
			continue
		}
		up, err := net.Dial("unix", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestDatabaseOutage: while PostgreSQL is unreachable every API answer is 503 problem+json
// with Retry-After, never a 500; once it is back, requests work again. Before, requests
// caught as the database went away answered 500 urn:sendwerk:problem:internal.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	proxy, proxied := newDBProxy(t, dbtest.NewDatabase(t))
	up := smtptest.NewServer(t, smtptest.Opts{})
	// Read caches off: whether the first message's delivery had cached its connector before
	// the cut is a race, and a cached read rightly answers 200 for up to the TTL.
	b := setup(t, map[string]string{"DATABASE_URL": proxied, "SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s",
		"SENDWERK_DELIVERY_ATTEMPT_TIMEOUT": "2s", "SENDWERK_JOB_RESCUE_AFTER": "20s", "SENDWERK_CACHE_TTL": "0"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	ctx := context.Background()
	c := b.client(t, key)
	r, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "own", Kind: sendwerk.ConnectorKindSmtp,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: up.Host(), Port: up.Port(), Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: "noreply@acme.example"},
	})
	require.NoError(t, err)
	require.Equal(t, 201, r.StatusCode(), string(r.Body))
	body := `{"from":"noreply@acme.example","to":["jane@customer.example"],"subject":"Hi","text":"Hello"}`
	require.Equal(t, 202, b.do(t, "POST", "/v1/messages", key, "application/json", body).status)

	proxy.cut()
	requests := []struct{ method, path, token, body string }{
		{"GET", "/v1/tenants", testAdminToken, ""}, // the admin token needs no database: the handler meets the outage
		{"POST", "/v1/tenants", testAdminToken, `{"name":"Other"}`},
		{"POST", "/v1/messages", key, body},
		{"GET", "/v1/messages", key, ""},
		{"GET", "/v1/connectors", key, ""},
		{"GET", "/v1/connectors/" + r.JSON201.Id, key, ""},
		{"POST", "/v1/connectors/" + r.JSON201.Id + "/test-email", key, `{"to":"it@customer.example"}`},
	}
	for _, rq := range requests {
		res := b.do(t, rq.method, rq.path, rq.token, "application/json", rq.body)
		require.Equal(t, 503, res.status, "%s %s: %s", rq.method, rq.path, string(res.body))
		require.Equal(t, "application/problem+json", res.header.Get("Content-Type"), rq.path)
		require.NotEmpty(t, res.header.Get("Retry-After"), rq.path)
		require.Equal(t, "urn:sendwerk:problem:unavailable", res.problem.Type, rq.path)
	}
	require.NotContains(t, b.logs.String(), "internal error")

	proxy.restore()
	require.Eventually(t, func() bool {
		return b.do(t, "POST", "/v1/messages", key, "application/json", body).status == 202
	}, 20*time.Second, 200*time.Millisecond)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(b.logs.String())
		}
	})
	// A job fetched as the connection went (River's UPDATE committed, its answer lost) stays
	// `running` with nobody working it until River's rescuer (every 30 s) frees it after
	// SENDWERK_JOB_RESCUE_AFTER: both messages arrive, if not at once.
	up.WaitMessages(t, 2, 90*time.Second)
}
