package relay

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// listener enforces the per-IP connection limit before go-smtp sees a connection and wraps
// each accepted one in a trackedConn.
type listener struct {
	net.Listener
	srv  *Server
	name string
	tls  bool
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.srv.draining.Load() {
			_ = c.Close()
			continue
		}
		if !l.srv.perIP.acquire(ip) {
			l.srv.metrics.refused.WithLabelValues("per_ip_limit").Inc()
			l.srv.logger.Warn("smtp connection refused", "remote_ip", ip.String(), "listener", l.name, "reason", "per-IP connection limit")
			l.refuse(c)
			continue
		}
		tc := &trackedConn{Conn: c, srv: l.srv, id: newSessionID(), ip: ip, listener: l.name, opened: time.Now()}
		l.srv.track(tc)
		l.srv.metrics.connections.WithLabelValues(l.name).Inc()
		l.srv.metrics.active.Inc()
		return tc, nil
	}
}

// refuse answers a connection over the limit with 421 (after the TLS handshake on the
// implicit-TLS listener) and closes it, without holding up Accept. Beyond 64 refusals at
// once, connections are simply closed.
func (l *listener) refuse(c net.Conn) {
	select {
	case l.srv.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.srv.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		w := c
		if l.tls {
			tc := tls.Server(c, l.srv.cfg.TLS)
			if tc.Handshake() != nil {
				return
			}
			w = tc
		}
		_, _ = w.Write([]byte("421 4.7.0 " + l.srv.cfg.Hostname + " Too many connections from your address, try again later\r\n"))
	}()
}

// trackedConn is one client connection: its session id for log lines, its slot in the
// per-IP limit, and the idle/busy state graceful shutdown looks at.
type trackedConn struct {
	net.Conn
	srv      *Server
	id       string
	ip       netip.Addr
	listener string
	opened   time.Time

	busy      atomic.Bool // inside a mail transaction (MAIL FROM until the DATA reply)
	closeOnce sync.Once
	// expired is set once a read has hit its deadline: every later read fails the same
	// way. bufio hands the bytes of a line cut off by a timeout to go-smtp as a whole line
	// and forgets the error, which let a client dripping a byte now and then start a fresh
	// timeout with every fragment.
	expired atomic.Bool
	// readLimit (Unix nanoseconds; 0: none) is the latest read deadline anyone may set:
	// the end of the DATA phase, which go-smtp's per-command deadlines (BDAT) cannot extend.
	readLimit atomic.Int64

	mu       sync.Mutex
	username string
	conn     string
	tenant   string
	accepted int
	refused  int
}

// drainingError makes go-smtp answer "421 4.4.2" and hang up: the server is shutting down.
type drainingError struct{}

func (drainingError) Error() string   { return "smtp server shutting down" }
func (drainingError) Timeout() bool   { return true }
func (drainingError) Temporary() bool { return true }

var _ net.Error = drainingError{}

// Read refuses further commands of an idle session while the server drains; a session in
// the middle of a message reads on.
func (c *trackedConn) Read(b []byte) (int, error) {
	if c.srv.draining.Load() && !c.busy.Load() {
		return 0, drainingError{}
	}
	if c.expired.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.expired.Store(true)
	}
	return n, err
}

// limitReads caps every read deadline at end until it is called with the zero time.
func (c *trackedConn) limitReads(end time.Time) {
	if end.IsZero() {
		c.readLimit.Store(0)
		return
	}
	c.readLimit.Store(end.UnixNano())
}

// wakeIfIdle interrupts a blocked read of an idle session so it sees the drain.
func (c *trackedConn) wakeIfIdle() {
	if !c.busy.Load() {
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// SetReadDeadline keeps an idle session's read interrupted once the server drains (go-smtp
// sets a fresh deadline before every command).
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if c.srv.draining.Load() && !c.busy.Load() {
		t = time.Now()
	}
	if limit := c.readLimit.Load(); limit != 0 && (t.IsZero() || t.UnixNano() > limit) {
		t = time.Unix(0, limit)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.srv.untrack(c)
		c.srv.perIP.release(c.ip)
		c.srv.metrics.active.Dec()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.srv.logger.Info("smtp connection closed", "session", c.id, "remote_ip", c.ip.String(), "listener", c.listener,
			"username", c.username, "connector", c.conn, "tenant", c.tenant, "accepted", c.accepted, "refused", c.refused,
			"duration", time.Since(c.opened).Round(time.Millisecond))
	})
	return err
}

func (c *trackedConn) setLogin(username, connectorID, tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.username, c.conn, c.tenant = username, connectorID, tenantID
}

func (c *trackedConn) count(accepted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if accepted {
		c.accepted++
	} else {
		c.refused++
	}
}

// tracked finds the trackedConn under a connection go-smtp hands out (a *tls.Conn after
// STARTTLS or on the implicit-TLS listener).
func tracked(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func newSessionID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// connLimiter counts open connections per IP address.
type connLimiter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func newConnLimiter(max int) *connLimiter { return &connLimiter{max: max, n: map[netip.Addr]int{}} }

func (l *connLimiter) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return false
	}
	l.n[ip]++
	return true
}

func (l *connLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] <= 1 {
		delete(l.n, ip)
		return
	}
	l.n[ip]--
}

// throttle counts failures per key in a sliding window.
type throttle struct {
	limit  int
	window time.Duration
	mu     sync.Mutex
	fails  map[string][]time.Time
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, fails: map[string][]time.Time{}}
}

// blocked reports whether key reached the limit, and when its oldest counted failure
// leaves the window.
func (t *throttle) blocked(key string, now time.Time) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.prune(key, now)
	if len(list) < t.limit {
		return false, time.Time{}
	}
	return true, list[0].Add(t.window)
}

func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100000 {
		for k := range t.fails {
			t.prune(k, now)
		}
		if len(t.fails) > 100000 {
			clear(t.fails) // a flood of distinct keys: forget rather than grow without bound
		}
	}
	list := append(t.prune(key, now), now)
	if len(list) > t.limit {
		list = list[len(list)-t.limit:]
	}
	t.fails[key] = list
}

func (t *throttle) prune(key string, now time.Time) []time.Time {
	list := t.fails[key]
	i := 0
	for i < len(list) && !now.Before(list[i].Add(t.window)) {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = list
	return list
}
