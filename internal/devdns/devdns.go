// Package devdns is the development DNS server: an authoritative server on loopback that,
// for names under a reserved suffix (".test", RFC 2606), publishes exactly the TXT records
// Sendwerk asks customers to publish, read from the database when asked. A domain such as
// shop.test therefore verifies right after it is added, and its DKIM key is there for a
// verifier. Other names are forwarded to the machine's resolvers. It runs only in
// development; production resolves through real DNS.
package devdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Suffix is the reserved top-level domain the server is authoritative for.
const Suffix = "test"

// TTL of every record served: short, since records change as domains are added.
const TTL = 5

// maxTXTString is the longest character-string a TXT record holds.
const maxTXTString = 255

// Source answers which TXT values are published at a name (lower case, no trailing dot).
type Source interface {
	ExpectedTXT(ctx context.Context, name string) ([]string, error)
}

// Config configures Start.
type Config struct {
	// Addr is the UDP and TCP address to listen on, e.g. "localhost:2553" or "127.0.0.1:0".
	Addr string
	// Source may also be set later with SetSource (serve binds the port before the service
	// that answers exists, since that service's resolver points here); until then names
	// under the suffix get SERVFAIL.
	Source Source
	// Forward are resolvers ("host:port") asked for names outside Suffix; none: REFUSED.
	Forward []string
	Logger  *slog.Logger
}

// Server is the running development DNS server.
type Server struct {
	cfg    Config
	source atomic.Pointer[Source]
	udp    *dns.Server
	tcp    *dns.Server
	addr   string
	client *dns.Client
}

// Start listens on cfg.Addr (UDP and TCP on the same port) and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, client: &dns.Client{Timeout: 2 * time.Second}}
	if cfg.Source != nil {
		s.SetSource(cfg.Source)
	}
	pc, ln, err := listenPair(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			_ = s.Close()
			return nil, errors.New("the development DNS server did not start")
		}
	}
	return s, nil
}

// listenPair binds UDP on addr and TCP on the same port. With port 0 the kernel picks the
// UDP port, which TCP may already use (an outgoing connection's ephemeral port, say): it
// then tries again with a fresh UDP port, a few times.
func listenPair(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("error listening on %s: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 10
	}
	for i := 1; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("error listening on udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		if i >= tries {
			return nil, nil, fmt.Errorf("error listening on tcp %s: %w", pc.LocalAddr(), err)
		}
	}
}

// SetSource sets where the records come from.
func (s *Server) SetSource(src Source) { s.source.Store(&src) }

// Addr is the "ip:port" the server answers on, over UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops both listeners.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// Under reports whether name is under the development suffix.
func Under(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return name == Suffix || strings.HasSuffix(name, "."+Suffix)
}

// ServeDNS answers one query: authoritatively under Suffix, by forwarding otherwise.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		s.reply(w, req, new(dns.Msg).SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	if !Under(q.Name) {
		s.reply(w, req, s.forward(req))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	var values []string
	err := errors.New("no record source yet")
	if src := s.source.Load(); src != nil {
		values, err = (*src).ExpectedTXT(ctx, name)
	}
	resp := new(dns.Msg).SetReply(req)
	resp.Authoritative = true
	switch {
	case err != nil:
		s.cfg.Logger.Warn("development dns: error reading records", "name", name, "error", err)
		resp.Rcode = dns.RcodeServerFailure
	case len(values) == 0:
		resp.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY:
		for _, v := range values {
			resp.Answer = append(resp.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: TTL},
				Txt: split(v),
			})
		}
	}
	s.reply(w, req, resp)
}

// forward asks the configured resolvers, in order, for a name outside the suffix.
func (s *Server) forward(req *dns.Msg) *dns.Msg {
	for _, srv := range s.cfg.Forward {
		resp, _, err := s.client.Exchange(req, srv)
		if err == nil && resp != nil && resp.Truncated {
			// A large answer (a long SPF or DKIM record): ask again over TCP for all of it.
			resp, _, err = (&dns.Client{Net: "tcp", Timeout: s.client.Timeout}).Exchange(req, srv)
		}
		if err == nil && resp != nil {
			return resp
		}
	}
	return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
}

func (s *Server) reply(w dns.ResponseWriter, req, m *dns.Msg) {
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // clients retry over TCP, as for any large TXT answer
	}
	_ = w.WriteMsg(m)
}

// split cuts a value into character-strings of at most 255 bytes; a 2048-bit DKIM key
// needs two.
func split(v string) []string {
	var out []string
	for len(v) > maxTXTString {
		out = append(out, v[:maxTXTString])
		v = v[maxTXTString:]
	}
	return append(out, v)
}
