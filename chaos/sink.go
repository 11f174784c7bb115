package main

import (
	"bufio"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sinkMode is how the counting sink answers the end of DATA.
type sinkMode int32

const (
	modeAccept     sinkMode = iota // 250 at once
	modeSlow                       // 250 after the sink's delay
	modeDefer                      // 451 4.3.0
	modeDisconnect                 // close the connection without a reply
)

// sink is the upstream: go-smtp on loopback, counting the messages it accepted (answered
// 250) by Message-ID. A message counted twice arrived twice.
type sink struct {
	srv   *smtp.Server
	addr  *net.TCPAddr
	mode  atomic.Int32
	delay atomic.Int64 // nanoseconds, for modeSlow

	mu     sync.Mutex
	counts map[string]int // message id (msg_…) → copies accepted
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: ln.Addr().(*net.TCPAddr), counts: map[string]int{}}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.chaos.example"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) close() { _ = s.srv.Close() }

func (s *sink) set(m sinkMode, delay time.Duration) {
	s.delay.Store(int64(delay))
	s.mode.Store(int32(m))
}

// reset forgets the counts (a new scenario) and accepts again.
func (s *sink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.set(modeAccept, 0)
}

func (s *sink) copies(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[id]
}

func (s *sink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{s: b.s, conn: c}, nil
}

type sinkSession struct {
	s    *sink
	conn *smtp.Conn
}

func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }

var errDropped = errors.New("connection dropped by the sink")

func (ss *sinkSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable message"}
	}
	_, _ = io.Copy(io.Discard, msg.Body)
	switch sinkMode(ss.s.mode.Load()) {
	case modeSlow:
		time.Sleep(time.Duration(ss.s.delay.Load()))
	case modeDefer:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "chaos: try again later"}
	case modeDisconnect:
		_ = ss.conn.Conn().Close()
		return errDropped
	}
	id := messageIDOf(msg.Header.Get("Message-Id"))
	ss.s.mu.Lock()
	ss.s.counts[id]++
	ss.s.mu.Unlock()
	return nil
}

// messageIDOf turns "<msg_…@domain>" into "msg_…", Sendwerk's message id.
func messageIDOf(h string) string {
	h = strings.Trim(strings.TrimSpace(h), "<>")
	id, _, _ := strings.Cut(h, "@")
	return id
}
