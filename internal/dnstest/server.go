// Package dnstest runs an in-process authoritative DNS server on loopback so tests
// exercise real DNS over UDP and TCP instead of mocked lookups.
//
// The server answers like an authoritative server for every name it holds:
// NXDOMAIN for names that do not exist, NODATA (NOERROR, empty answer) for names
// that exist with other types, and CNAMEs followed through the zone with the chain
// in the answer. Faults (SERVFAIL, REFUSED, dropped queries, truncated UDP answers)
// can be injected per name while a test runs.
package dnstest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// maxChain bounds how many in-zone CNAMEs one answer follows, so a CNAME loop in a
// test zone ends instead of spinning.
const maxChain = 16

// faultKind says what the server does instead of answering normally.
type faultKind int

const (
	faultRcode faultKind = iota + 1
	faultDrop
	faultTruncate
)

type fault struct {
	kind  faultKind
	rcode int
	types map[uint16]bool // empty: every type
}

func (f fault) applies(qtype uint16) bool {
	return len(f.types) == 0 || f.types[qtype]
}

// Server is an authoritative DNS server on 127.0.0.1 serving UDP and TCP on one port.
type Server struct {
	t       testing.TB
	addr    string
	udp     *dns.Server
	tcp     *dns.Server
	queries atomic.Int64

	mu      sync.RWMutex
	records map[string][]dns.RR // canonical owner name -> records in insertion order
	faults  map[string]fault    // canonical name -> fault
}

// NewServer starts a server answering from zone (BIND zone-file text; $ORIGIN and
// $TTL are allowed, relative names without $ORIGIN are relative to the root). It is
// shut down when the test ends.
func NewServer(t testing.TB, zone string) *Server {
	t.Helper()
	s := &Server{t: t, records: map[string][]dns.RR{}, faults: map[string]fault{}}
	if err := s.load(zone); err != nil {
		t.Fatalf("error parsing test zone: %v", err)
	}
	s.listen(t)
	return s
}

// listen binds UDP on a free port and TCP on the same port; the TCP port can be
// taken by another process, so it retries with a fresh UDP port a few times.
func (s *Server) listen(t testing.TB) {
	t.Helper()
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("error listening on udp: %v", err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			lastErr = err
			_ = pc.Close()
			continue
		}
		s.addr = addr
		s.udp = &dns.Server{PacketConn: pc, Handler: s}
		s.tcp = &dns.Server{Listener: ln, Handler: s}
		s.start(t)
		return
	}
	t.Fatalf("error listening on tcp beside udp: %v", lastErr)
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("dns test server did not start")
		}
	}
	t.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
}

// Addr is the "127.0.0.1:port" the server listens on, for UDP and TCP alike.
func (s *Server) Addr() string { return s.addr }

// Queries counts the queries received so far, including dropped and faulted ones.
func (s *Server) Queries() int { return int(s.queries.Load()) }

// SetZone replaces every record with those of zone; faults stay as they are.
func (s *Server) SetZone(zone string) {
	s.t.Helper()
	rrs, err := parseZone(zone)
	if err != nil {
		s.t.Fatalf("error parsing test zone: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = map[string][]dns.RR{}
	for _, rr := range rrs {
		s.addLocked(rr)
	}
}

// Add adds one record given in zone-file syntax, e.g. "example.com. 300 IN TXT \"v=spf1 -all\"".
func (s *Server) Add(rr string) {
	s.t.Helper()
	parsed, err := dns.NewRR(rr)
	if err != nil {
		s.t.Fatalf("error parsing record %q: %v", rr, err)
	}
	s.AddRR(parsed)
}

// AddRR adds records built in Go; it serves owner names that zone-file syntax makes
// awkward (spaces, arbitrary bytes).
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		s.addLocked(rr)
	}
}

func (s *Server) addLocked(rr dns.RR) {
	key := Canonical(rr.Header().Name)
	s.records[key] = append(s.records[key], rr)
}

// Remove deletes the records of one type at name (dns.TypeANY removes all of them).
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := Canonical(name)
	kept := s.records[key][:0]
	for _, rr := range s.records[key] {
		if qtype != dns.TypeANY && rr.Header().Rrtype != qtype {
			kept = append(kept, rr)
		}
	}
	if len(kept) == 0 {
		delete(s.records, key)
		return
	}
	s.records[key] = kept
}

// SetRcode makes queries for name (limited to qtypes when given) fail with rcode,
// e.g. dns.RcodeServerFailure or dns.RcodeRefused.
func (s *Server) SetRcode(name string, rcode int, qtypes ...uint16) {
	s.setFault(name, fault{kind: faultRcode, rcode: rcode, types: typeSet(qtypes)})
}

// Drop makes the server ignore queries for name (limited to qtypes when given), so
// clients time out.
func (s *Server) Drop(name string, qtypes ...uint16) {
	s.setFault(name, fault{kind: faultDrop, types: typeSet(qtypes)})
}

// Truncate makes UDP answers for name carry TC and no records, so clients must retry
// over TCP, where the full answer is served.
func (s *Server) Truncate(name string, qtypes ...uint16) {
	s.setFault(name, fault{kind: faultTruncate, types: typeSet(qtypes)})
}

// Clear removes any fault set for name.
func (s *Server) Clear(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, Canonical(name))
}

func (s *Server) setFault(name string, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[Canonical(name)] = f
}

func typeSet(qtypes []uint16) map[uint16]bool {
	set := map[uint16]bool{}
	for _, q := range qtypes {
		set[q] = true
	}
	return set
}

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	if len(req.Question) != 1 {
		s.reply(w, req, new(dns.Msg).SetRcode(req, dns.RcodeFormatError))
		return
	}
	q := req.Question[0]
	udp := isUDP(w)
	s.mu.RLock()
	f, faulted := s.faults[Canonical(q.Name)]
	s.mu.RUnlock()
	if faulted && f.applies(q.Qtype) {
		switch {
		case f.kind == faultDrop:
			return
		case f.kind == faultRcode:
			s.reply(w, req, new(dns.Msg).SetRcode(req, f.rcode))
			return
		case f.kind == faultTruncate && udp:
			m := new(dns.Msg).SetReply(req)
			m.Authoritative, m.Truncated = true, true
			s.reply(w, req, m)
			return
		}
	}
	m := s.answer(req, q)
	if udp {
		m.Truncate(udpSize(req))
	}
	s.reply(w, req, m)
}

func (s *Server) reply(w dns.ResponseWriter, req, m *dns.Msg) {
	if opt := req.IsEdns0(); opt != nil && m.IsEdns0() == nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	_ = w.WriteMsg(m)
}

// answer builds the authoritative reply, following CNAMEs inside the zone.
func (s *Server) answer(req *dns.Msg, q dns.Question) *dns.Msg {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	s.mu.RLock()
	defer s.mu.RUnlock()
	name := Canonical(q.Name)
	seen := map[string]bool{}
	for range maxChain {
		rrs, exists := s.records[name], s.existsLocked(name)
		if !exists {
			m.Rcode = dns.RcodeNameError
			return m
		}
		matched, cname := match(rrs, q.Qtype)
		m.Answer = append(m.Answer, matched...)
		if len(matched) > 0 || cname == nil {
			return m
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		seen[name] = true
		name = Canonical(cname.(*dns.CNAME).Target)
		if seen[name] {
			return m
		}
	}
	return m
}

// existsLocked is true for names with records and for empty non-terminals (names
// with records only below them), which exist in real DNS.
func (s *Server) existsLocked(name string) bool {
	if len(s.records[name]) > 0 {
		return true
	}
	suffix := "." + name
	for owner := range s.records {
		if strings.HasSuffix(owner, suffix) {
			return true
		}
	}
	return false
}

// match returns copies of the records of qtype, or the CNAME to follow when there
// are none.
func match(rrs []dns.RR, qtype uint16) ([]dns.RR, dns.RR) {
	var out []dns.RR
	var cname dns.RR
	for _, rr := range rrs {
		switch rt := rr.Header().Rrtype; {
		case rt == qtype || qtype == dns.TypeANY:
			out = append(out, dns.Copy(rr))
		case rt == dns.TypeCNAME:
			cname = rr
		}
	}
	return out, cname
}

func (s *Server) load(zone string) error {
	rrs, err := parseZone(zone)
	if err != nil {
		return err
	}
	for _, rr := range rrs {
		s.addLocked(rr)
	}
	return nil
}

func parseZone(zone string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("error parsing zone: %w", err)
	}
	return rrs, nil
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.LocalAddr().(*net.UDPAddr)
	return ok
}

// udpSize is the answer size the client accepts over UDP: its EDNS0 buffer, or 512.
func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

// Canonical is the lower-case, fully qualified presentation form of name, the same
// for every spelling of one wire name (escaped or not); the server keys records by it.
func Canonical(name string) string {
	fq := dns.Fqdn(name)
	buf := make([]byte, 512)
	off, err := dns.PackDomainName(fq, buf, 0, nil, false)
	if err != nil {
		return strings.ToLower(fq)
	}
	out, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return strings.ToLower(fq)
	}
	return strings.ToLower(out)
}

// EscapeTXT turns raw bytes into a TXT character-string as miekg/dns expects it
// (backslash escapes), so records with any byte can be served.
func EscapeTXT(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteString("\\" + leftPad3(strconv.Itoa(int(c))))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func leftPad3(s string) string {
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
