package main

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// dnsServer is a small authoritative server on loopback for the DKIM domain's records
// (ownership, DKIM, DMARC): exact names only, NXDOMAIN or NODATA otherwise, UDP answers
// truncated to the client's buffer so long DKIM keys are fetched over TCP.
type dnsServer struct {
	addr     string
	udp, tcp *dns.Server

	mu      sync.RWMutex
	records map[string][]dns.RR
}

func startDNS() (*dnsServer, error) {
	s := &dnsServer{records: map[string][]dns.RR{}}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			lastErr = err
			_ = pc.Close()
			continue
		}
		s.addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: s}
		s.tcp = &dns.Server{Listener: ln, Handler: s}
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go func() { _ = srv.ActivateAndServe() }()
			<-started
		}
		return s, nil
	}
	return nil, fmt.Errorf("error listening on tcp beside udp: %w", lastErr)
}

func (s *dnsServer) close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// load adds the records of a zone-file snippet with absolute names.
func (s *dnsServer) load(zone string) error {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	s.mu.Lock()
	defer s.mu.Unlock()
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
	return zp.Err()
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.mu.RLock()
		rrs, ok := s.records[strings.ToLower(q.Name)]
		s.mu.RUnlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}
