package main

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the discarding SMTP server both Sendwerk and Postfix relay to. It keeps no
// message, only when each Message-ID arrived, how many messages came and how many carried a
// DKIM signature.
type sink struct {
	srv  *smtp.Server
	ln   net.Listener
	addr *net.TCPAddr

	count  atomic.Int64
	signed atomic.Int64

	mu      sync.Mutex
	arrived map[string]time.Time
	waiters []sinkWaiter
}

type sinkWaiter struct {
	n  int64
	ch chan struct{}
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, addr: ln.Addr().(*net.TCPAddr), arrived: map[string]time.Time{}}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.bench.example"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.MaxMessageBytes = 50 << 20
	s.srv.MaxRecipients = 100
	s.srv.ReadTimeout = 5 * time.Minute
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) close() { _ = s.srv.Close() }

// reset forgets counts and arrivals between runs.
func (s *sink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count.Store(0)
	s.signed.Store(0)
	s.arrived = map[string]time.Time{}
}

// arrival returns when the message with this Message-ID (angle brackets included) arrived.
func (s *sink) arrival(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.arrived[id]
	return t, ok
}

// waitCount returns a channel closed once n messages have arrived since the last reset.
func (s *sink) waitCount(n int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.count.Load() >= n {
		close(ch)
		return ch
	}
	s.waiters = append(s.waiters, sinkWaiter{n: n, ch: ch})
	return ch
}

func (s *sink) record(id []byte, signed bool) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(id) > 0 {
		s.arrived[string(id)] = now
	}
	if signed {
		s.signed.Add(1)
	}
	n := s.count.Add(1)
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if n >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	s.waiters = kept
}

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct {
	s   *sink
	buf *bufio.Reader
}

func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }
func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

// Data reads the header for Message-ID and DKIM-Signature and discards the rest.
func (ss *sinkSession) Data(r io.Reader) error {
	if ss.buf == nil {
		ss.buf = bufio.NewReaderSize(r, 16<<10)
	} else {
		ss.buf.Reset(r)
	}
	var id []byte
	signed := false
	for {
		line, err := ss.buf.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 || err != nil {
			break
		}
		switch {
		case hasPrefixFold(line, "message-id:"):
			id = append([]byte(nil), bytes.TrimSpace(line[len("message-id:"):])...)
		case hasPrefixFold(line, "dkim-signature:"):
			signed = true
		}
	}
	if _, err := io.Copy(io.Discard, ss.buf); err != nil {
		return err
	}
	ss.s.record(id, signed)
	return nil
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}
