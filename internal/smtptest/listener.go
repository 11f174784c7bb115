package smtptest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// trackingListener counts accepted connections and wraps them so a session can drop them.
type trackingListener struct {
	net.Listener
	srv *Server
}

// Accept numbers the connection and applies the banner delay.
func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	id := l.srv.connections.Add(1)
	return &trackedConn{Conn: c, id: int(id), bannerDelay: l.srv.opts.BannerDelay, noPipelining: l.srv.opts.DisablePipelining}, nil
}

// trackedConn is the raw TCP connection under go-smtp (and under TLS, when there is TLS).
// Arming dropOnRead closes it at the next read: the server has written its reply to the
// current command and drops the connection when the client sends the next one.
//
// It also keeps what the client sent since the server's last reply, which tells whether
// the client waited for each reply, and takes PIPELINING out of EHLO replies when asked.
type trackedConn struct {
	net.Conn
	id           int
	bannerDelay  time.Duration
	noPipelining bool
	firstWrite   sync.Once
	dropOnRead   atomic.Bool
	mu           sync.Mutex
	sinceReply   []byte
}

// maxSinceReply bounds what trackedConn keeps of the client's bytes between replies.
const maxSinceReply = 64 << 10

// pipeliningLine is the EHLO reply line go-smtp advertises PIPELINING with (always
// first among its capabilities, so never the last line).
var pipeliningLine = []byte("250-PIPELINING\r\n")

// Read closes the connection instead of reading when a drop is armed.
func (c *trackedConn) Read(p []byte) (int, error) {
	if c.dropOnRead.Load() {
		_ = c.Conn.Close()
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.sinceReply) < maxSinceReply { // commands, not a message body
		c.sinceReply = append(c.sinceReply, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

// Write delays the first write by the banner delay.
func (c *trackedConn) Write(p []byte) (int, error) {
	c.firstWrite.Do(func() { time.Sleep(c.bannerDelay) })
	c.mu.Lock()
	c.sinceReply = c.sinceReply[:0]
	c.mu.Unlock()
	if c.noPipelining && bytes.Contains(p, pipeliningLine) {
		if _, err := c.Conn.Write(bytes.Replace(p, pipeliningLine, nil, 1)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// sentSinceReply reports whether the client sent s since the server's last reply.
func (c *trackedConn) sentSinceReply(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Contains(c.sinceReply, []byte(s))
}

// trackedOf finds the raw connection under a go-smtp connection, through TLS if needed.
func trackedOf(c *smtp.Conn) *trackedConn {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	if tc == nil {
		return &trackedConn{Conn: nc}
	}
	return tc
}

// SilentListener accepts TCP connections and never writes a byte, so clients run into
// their banner (greeting) timeouts.
type SilentListener struct {
	ln          net.Listener
	addr        *net.TCPAddr
	connections atomic.Int64
	mu          sync.Mutex
	conns       []net.Conn
}

// NewSilentListener starts a SilentListener on 127.0.0.1:0, closed at t.Cleanup.
func NewSilentListener(t testing.TB) *SilentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: error listening: %v", err)
	}
	l := &SilentListener{ln: ln, addr: ln.Addr().(*net.TCPAddr)}
	go l.acceptLoop()
	t.Cleanup(l.close)
	return l
}

// acceptLoop holds every connection open without reading or writing.
func (l *SilentListener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.connections.Add(1)
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
}

// close stops accepting and closes the held connections.
func (l *SilentListener) close() {
	_ = l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// Addr is the listener's "127.0.0.1:port".
func (l *SilentListener) Addr() string { return l.addr.String() }

// Host is the listener's IP address as a string.
func (l *SilentListener) Host() string { return l.addr.IP.String() }

// Port is the listener's TCP port.
func (l *SilentListener) Port() int { return l.addr.Port }

// Connections is the number of TCP connections accepted so far.
func (l *SilentListener) Connections() int { return int(l.connections.Load()) }

// ClosedPort returns a loopback port nothing listens on (listen, then close), so that
// connecting to it is refused.
func ClosedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: error listening: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}
