// Package dnscheck holds the DNS checks behind sending-domain verification: a small
// resolver that keeps "the record is missing" apart from "DNS did not answer", an RFC
// 7208 SPF evaluator, and the ownership, SPF, DKIM and DMARC checks built on them.
// It touches neither the database nor the job queue.
package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const (
	// DefaultTimeout is the wait for one answer from one server; a live resolver
	// answers well within it and a dead one should not hold a check for long.
	DefaultTimeout = 2 * time.Second
	// DefaultAttempts is how many rounds over the server list a lookup makes before
	// it reports a temporary error.
	DefaultAttempts = 2
	// DefaultUDPSize is the EDNS0 buffer advertised: the DNS Flag Day 2020 value,
	// which avoids IP fragmentation while fitting most DKIM keys.
	DefaultUDPSize = 1232
	// MaxCNAMEChain bounds the CNAMEs followed for one lookup; longer chains are
	// almost always loops or misconfiguration.
	MaxCNAMEChain = 8
	// fallbackServer is used when no resolver configuration can be read.
	fallbackServer = "127.0.0.1:53"
)

// Lookuper is what the checks need from DNS. *Resolver is the real one; an
// interface keeps the SPF evaluator independent of how queries travel.
type Lookuper interface {
	Lookup(ctx context.Context, name string, qtype uint16) (*Answer, error)
}

// ResolverConfig tunes a Resolver; nil fields take the defaults above.
type ResolverConfig struct {
	// Servers are "host:port" addresses asked in order; empty means DefaultServers().
	Servers []string
	// Timeout is the wait for one answer from one server.
	Timeout time.Duration
	// Attempts is the number of rounds over Servers.
	Attempts int
	// UDPSize is the EDNS0 buffer size advertised.
	UDPSize uint16
}

// Resolver queries recursive resolvers (or authoritative test servers) with
// miekg/dns, retrying over TCP when a UDP answer is truncated and following CNAMEs.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	udpSize  uint16
}

var _ Lookuper = (*Resolver)(nil)

// NewResolver builds a Resolver; cfg may be nil.
func NewResolver(cfg *ResolverConfig) *Resolver {
	r := &Resolver{timeout: DefaultTimeout, attempts: DefaultAttempts, udpSize: DefaultUDPSize}
	if cfg != nil {
		r.servers = slices.Clone(cfg.Servers)
		r.timeout = cmp.Or(cfg.Timeout, r.timeout)
		r.attempts = cmp.Or(cfg.Attempts, r.attempts)
		r.udpSize = cmp.Or(cfg.UDPSize, r.udpSize)
	}
	if len(r.servers) == 0 {
		r.servers = DefaultServers()
	}
	r.attempts = max(r.attempts, 1)
	return r
}

// Servers are the addresses this resolver asks, in order.
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// DefaultServers reads the nameservers of the system resolver configuration and
// falls back to 127.0.0.1:53 (a local caching resolver) when there is none.
func DefaultServers() []string {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cfg.Servers) == 0 {
		return []string{fallbackServer}
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cmp.Or(cfg.Port, "53")))
	}
	return out
}

// Answer is the outcome of a lookup that DNS answered: records found, or an
// authoritative absence (NXDOMAIN or NODATA).
type Answer struct {
	// Name is the name asked for, Type the record type.
	Name string
	Type uint16
	// Rcode is dns.RcodeSuccess or dns.RcodeNameError for the final name.
	Rcode int
	// Records are the records of Type at the end of the CNAME chain.
	Records []dns.RR
	// CNAMEs are the aliases followed, in order.
	CNAMEs []string
	// Server is the resolver that answered.
	Server string
}

// NXDomain is true when the name (or the end of its CNAME chain) does not exist.
func (a *Answer) NXDomain() bool { return a.Rcode == dns.RcodeNameError }

// Void is true for an authoritative absence: NXDOMAIN, or NODATA (the name exists
// but has no record of the type). RFC 7208 counts both as void lookups.
func (a *Answer) Void() bool { return len(a.Records) == 0 }

// Status words the answer for traces: "ok", "nxdomain" or "nodata".
func (a *Answer) Status() string {
	switch {
	case a.NXDomain():
		return "nxdomain"
	case a.Void():
		return "nodata"
	}
	return "ok"
}

// TXT returns each TXT record with its character-strings joined, as raw bytes:
// long values (DKIM keys) are split into 255-byte strings on the wire.
func (a *Answer) TXT() []string {
	var out []string
	for _, rr := range a.Records {
		if t, ok := rr.(*dns.TXT); ok {
			var b strings.Builder
			for _, s := range t.Txt {
				b.WriteString(unescapeTXT(s))
			}
			out = append(out, b.String())
		}
	}
	return out
}

// IPs returns the addresses of A and AAAA records.
func (a *Answer) IPs() []netip.Addr {
	var out []netip.Addr
	for _, rr := range a.Records {
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	return out
}

// Hosts returns MX exchanges (by preference), PTR and CNAME targets as raw names
// without the trailing dot.
func (a *Answer) Hosts() []string {
	recs := slices.Clone(a.Records)
	slices.SortStableFunc(recs, func(x, y dns.RR) int {
		mx, _ := x.(*dns.MX)
		my, _ := y.(*dns.MX)
		if mx == nil || my == nil {
			return 0
		}
		return int(mx.Preference) - int(my.Preference)
	})
	var out []string
	for _, rr := range recs {
		switch v := rr.(type) {
		case *dns.MX:
			out = append(out, rawName(v.Mx))
		case *dns.PTR:
			out = append(out, rawName(v.Ptr))
		case *dns.CNAME:
			out = append(out, rawName(v.Target))
		}
	}
	return out
}

// ErrorKind classifies why DNS gave no usable answer.
type ErrorKind string

const (
	KindTimeout     ErrorKind = "timeout"
	KindServFail    ErrorKind = "servfail"
	KindRefused     ErrorKind = "refused"
	KindNetwork     ErrorKind = "network"
	KindRcode       ErrorKind = "rcode"
	KindBadResponse ErrorKind = "bad_response"
	KindCNAMELoop   ErrorKind = "cname_loop"
	KindInvalidName ErrorKind = "invalid_name"
	// KindNotRecursive is a referral (no answer, NS records in the authority section, not
	// authoritative) or a non-authoritative answer without recursion available: the server
	// asked is not a recursive resolver, so "no record" from it means nothing.
	KindNotRecursive ErrorKind = "not_recursive"
)

// LookupError is a lookup that DNS did not answer usably. Most kinds are temporary
// and must never be read as "record missing"; a CNAME loop or an unqueryable name
// are permanent.
type LookupError struct {
	Name   string
	Type   uint16
	Kind   ErrorKind
	Rcode  int
	Server string
	Err    error
}

func (e *LookupError) Error() string {
	msg := fmt.Sprintf("error looking up %s %s: %s", dns.TypeToString[e.Type], e.Name, e.Kind)
	if e.Kind == KindRcode {
		msg += " " + dns.RcodeToString[e.Rcode]
	}
	if e.Server != "" {
		msg += " from " + e.Server
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *LookupError) Unwrap() error { return e.Err }

// Temporary is true when asking again later may give an answer.
func (e *LookupError) Temporary() bool {
	return e.Kind != KindCNAMELoop && e.Kind != KindInvalidName
}

// IsTemporary reports whether err is a DNS failure that may pass (timeout,
// SERVFAIL, REFUSED, network trouble); callers must not treat it as a missing record.
func IsTemporary(err error) bool {
	var le *LookupError
	if errors.As(err, &le) {
		return le.Temporary()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// Lookup asks for records of qtype at name (raw form, trailing dot optional),
// following CNAMEs across queries when the answer does not carry the whole chain.
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	ans := &Answer{Name: strings.TrimSuffix(name, "."), Type: qtype}
	current := ans.Name
	seen := map[string]bool{strings.ToLower(current): true}
	for {
		resp, server, err := r.exchange(ctx, current, qtype)
		if err != nil {
			return nil, err
		}
		ans.Server, ans.Rcode = server, resp.Rcode
		recs, last, err := followChain(resp.Answer, current, qtype, seen, &ans.CNAMEs)
		if err != nil {
			return nil, &LookupError{Name: name, Type: qtype, Kind: KindCNAMELoop, Server: server, Err: err}
		}
		ans.Records = recs
		if len(recs) > 0 || strings.EqualFold(last, current) || resp.Rcode == dns.RcodeNameError {
			return ans, nil
		}
		current = last // the chain left this answer (out of the server's zone): ask for its end
	}
}

// followChain walks the answer section from name through CNAMEs and returns the
// records of qtype at the end and the last name reached.
func followChain(rrs []dns.RR, name string, qtype uint16, seen map[string]bool, chain *[]string) ([]dns.RR, string, error) {
	current := name
	for {
		var recs []dns.RR
		next := ""
		for _, rr := range rrs {
			if !strings.EqualFold(rawName(rr.Header().Name), current) {
				continue
			}
			if rr.Header().Rrtype == qtype {
				recs = append(recs, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				next = rawName(c.Target)
			}
		}
		if len(recs) > 0 || next == "" {
			return recs, current, nil
		}
		key := strings.ToLower(next)
		if seen[key] {
			return nil, "", fmt.Errorf("CNAME loop at %s", next)
		}
		if len(*chain) >= MaxCNAMEChain {
			return nil, "", fmt.Errorf("CNAME chain longer than %d", MaxCNAMEChain)
		}
		seen[key] = true
		*chain = append(*chain, next)
		current = next
	}
}

// exchange asks each server in turn, for a number of rounds, and returns the first
// answer that is NOERROR or NXDOMAIN.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	wire := wireName(name)
	if _, ok := dns.IsDomainName(wire); !ok || len(strings.TrimSuffix(name, ".")) > 253 {
		return nil, "", &LookupError{Name: name, Type: qtype, Kind: KindInvalidName}
	}
	m := new(dns.Msg)
	m.SetQuestion(wire, qtype)
	m.SetEdns0(r.udpSize, false)
	var lastErr error
	for range r.attempts {
		for _, srv := range r.servers {
			if err := ctx.Err(); err != nil {
				return nil, "", &LookupError{Name: name, Type: qtype, Kind: KindTimeout, Err: err}
			}
			resp, err := r.exchangeOne(ctx, m, srv)
			if err == nil {
				return resp, srv, nil
			}
			lastErr = err
		}
	}
	return nil, "", lastErr
}

// exchangeOne does one UDP query, repeated over TCP when the answer is truncated.
func (r *Resolver) exchangeOne(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	q := m.Question[0]
	c := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: r.udpSize}
	resp, _, err := c.ExchangeContext(ctx, m, srv)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, srv)
	}
	if err != nil {
		return nil, &LookupError{Name: rawName(q.Name), Type: q.Qtype, Kind: classifyNetErr(err), Server: srv, Err: err}
	}
	return resp, checkResponse(resp, q, srv)
}

func checkResponse(resp *dns.Msg, q dns.Question, srv string) error {
	le := &LookupError{Name: rawName(q.Name), Type: q.Qtype, Server: srv, Rcode: resp.Rcode}
	switch {
	case len(resp.Question) != 1 || !strings.EqualFold(rawName(resp.Question[0].Name), rawName(q.Name)) || resp.Question[0].Qtype != q.Qtype:
		le.Kind = KindBadResponse
	case (resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) && notRecursive(resp):
		le.Kind = KindNotRecursive
	case resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError:
		return nil
	case resp.Rcode == dns.RcodeServerFailure:
		le.Kind = KindServFail
	case resp.Rcode == dns.RcodeRefused:
		le.Kind = KindRefused
	default:
		le.Kind = KindRcode
	}
	return le
}

// notRecursive recognises answers from a server that did not recurse for us: a referral
// (no answer, NS in the authority section, no AA bit), or any non-authoritative reply
// without RA. An authoritative answer (AA) is the zone's own data and stands.
func notRecursive(resp *dns.Msg) bool {
	if resp.Authoritative {
		return false
	}
	if !resp.RecursionAvailable {
		return true
	}
	if len(resp.Answer) > 0 {
		return false
	}
	for _, rr := range resp.Ns {
		if rr.Header().Rrtype == dns.TypeNS {
			return true
		}
	}
	return false
}

// CheckRecursion asks every configured server for the root NS set with recursion desired
// and returns an error naming the servers that do not offer recursion (no RA bit): an
// authoritative server there answers delegated names (a _domainkey sub-zone) with
// referrals, which checks then report as dns.not_recursive.
func (r *Resolver) CheckRecursion(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.SetEdns0(r.udpSize, false)
	var bad []string
	for _, srv := range r.servers {
		c := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: r.udpSize}
		resp, _, err := c.ExchangeContext(ctx, m, srv)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s (no answer: %v)", srv, err))
		case !resp.RecursionAvailable:
			bad = append(bad, srv+" (recursion not available)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("DNS servers that are not recursive resolvers: %s", strings.Join(bad, ", "))
	}
	return nil
}

func classifyNetErr(err error) ErrorKind {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return KindTimeout
	}
	return KindNetwork
}

// wireName turns a raw name into miekg/dns presentation form: only the escape
// character itself needs escaping, every other byte packs as it is.
func wireName(name string) string {
	return dns.Fqdn(strings.ReplaceAll(name, `\`, `\\`))
}

// rawName undoes presentation escapes (\DDD, \X) and drops the trailing dot.
func rawName(name string) string {
	return strings.TrimSuffix(unescapeTXT(name), ".")
}

// unescapeTXT decodes miekg/dns presentation escapes back to raw bytes.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
