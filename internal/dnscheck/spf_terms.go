package dnscheck

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// evalTerm evaluates one mechanism; sub is the include path below it when an
// include matched.
func (r *spfRun) evalTerm(t spfTerm, domain string, depth int) (bool, []string, error) {
	switch t.mech {
	case "all":
		return true, nil, nil
	case "ip4", "ip6":
		ip := r.env.ip
		return ip.Is4() == t.network.Addr().Is4() && t.network.Contains(ip), nil, nil
	case "include":
		return r.evalInclude(t, domain, depth)
	}
	if err := r.countTerm(); err != nil {
		return false, nil, err
	}
	var matched bool
	var err error
	switch t.mech {
	case "a":
		matched, err = r.evalA(t, domain)
	case "mx":
		matched, err = r.evalMX(t, domain)
	case "ptr":
		matched, err = r.evalPTR(t, domain)
	case "exists":
		matched, err = r.evalExists(t, domain)
	}
	return matched, nil, err
}

// evalInclude maps the nested result per RFC 7208 5.2: pass matches; fail,
// softfail and neutral do not; temperror and permerror propagate; none is permerror.
func (r *spfRun) evalInclude(t spfTerm, domain string, depth int) (bool, []string, error) {
	if err := r.countTerm(); err != nil {
		return false, nil, err
	}
	target, ok := r.targetName(t.domain, domain)
	if !ok {
		return false, nil, permErr(ProblemIncludeNone, "include:%s is not a valid domain name", target)
	}
	sub := r.checkHost(target, t.raw, depth+1, false)
	switch sub.result {
	case SPFPass:
		return true, sub.path, nil
	case SPFFail, SPFSoftFail, SPFNeutral:
		return false, nil, nil
	case SPFNone:
		return false, nil, permErr(ProblemIncludeNone, "include:%s points to a domain without an SPF record", target)
	}
	return false, nil, sub.err
}

func (r *spfRun) evalA(t spfTerm, domain string) (bool, error) {
	target, ok := r.targetName(t.domain, domain)
	if !ok {
		return false, nil
	}
	ans, err := r.lookup(target, r.addrType(), t.raw)
	if err != nil {
		return false, r.dnsErr(err)
	}
	if err := r.countVoid(ans); err != nil {
		return false, err
	}
	return r.matchAddrs(ans.IPs(), t), nil
}

func (r *spfRun) evalMX(t spfTerm, domain string) (bool, error) {
	target, ok := r.targetName(t.domain, domain)
	if !ok {
		return false, nil
	}
	ans, err := r.lookup(target, dns.TypeMX, t.raw)
	if err != nil {
		return false, r.dnsErr(err)
	}
	if err := r.countVoid(ans); err != nil {
		return false, err
	}
	hosts := ans.Hosts()
	if len(hosts) > maxNames {
		return false, permErr(ProblemMXLimit, "%s has %d MX records; SPF looks at no more than %d", target, len(hosts), maxNames)
	}
	for _, host := range hosts {
		if host == "" { // null MX (RFC 7505): no mail host
			continue
		}
		addrs, err := r.lookup(host, r.addrType(), t.raw)
		if err != nil {
			return false, r.dnsErr(err)
		}
		if r.matchAddrs(addrs.IPs(), t) {
			return true, nil
		}
	}
	return false, nil
}

// evalPTR follows RFC 7208 5.5: DNS errors make it not match, and only the first
// ten names that end in the target are validated.
func (r *spfRun) evalPTR(t spfTerm, domain string) (bool, error) {
	target, _ := r.targetName(t.domain, domain)
	names, err := r.ptrNames(t.raw)
	if err != nil {
		return false, err
	}
	for _, name := range names {
		if hasDomainSuffix(name, target) && r.validates(name, t.raw) {
			return true, nil
		}
	}
	return false, nil
}

// ptrNames returns up to ten PTR names of the client IP; DNS errors give none.
func (r *spfRun) ptrNames(term string) ([]string, error) {
	rev, err := dns.ReverseAddr(r.env.ip.String())
	if err != nil {
		return nil, nil
	}
	ans, err := r.lookup(rawName(rev), dns.TypePTR, term)
	if err != nil {
		return nil, nil
	}
	if term != "" {
		if err := r.countVoid(ans); err != nil {
			return nil, err
		}
	}
	names := ans.Hosts()
	return names[:min(len(names), maxNames)], nil
}

// validates reports whether name has an address equal to the client IP; DNS
// errors skip the name.
func (r *spfRun) validates(name, term string) bool {
	ans, err := r.lookup(name, r.addrType(), term)
	if err != nil {
		return false
	}
	for _, ip := range ans.IPs() {
		if ip == r.env.ip {
			return true
		}
	}
	return false
}

func (r *spfRun) evalExists(t spfTerm, domain string) (bool, error) {
	target, ok := r.targetName(t.domain, domain)
	if !ok {
		return false, nil
	}
	ans, err := r.lookup(target, dns.TypeA, t.raw) // always A, whatever the client's family
	if err != nil {
		return false, r.dnsErr(err)
	}
	if err := r.countVoid(ans); err != nil {
		return false, err
	}
	return !ans.Void(), nil
}

func (r *spfRun) addrType() uint16 {
	if r.env.ip.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// matchAddrs compares the client IP with each address under the mechanism's CIDR
// length for the client's family.
func (r *spfRun) matchAddrs(addrs []netip.Addr, t spfTerm) bool {
	bits := t.cidr6
	if r.env.ip.Is4() {
		bits = t.cidr4
	}
	for _, a := range addrs {
		if a.Is4() != r.env.ip.Is4() {
			continue
		}
		if p, err := a.Prefix(bits); err == nil && p.Contains(r.env.ip) {
			return true
		}
	}
	return false
}

func hasDomainSuffix(name, domain string) bool {
	name, domain = strings.ToLower(strings.TrimSuffix(name, ".")), strings.ToLower(strings.TrimSuffix(domain, "."))
	return name == domain || strings.HasSuffix(name, "."+domain)
}

// validatedPTR is the %{p} macro: a validated name of the client IP, preferring the
// current domain, then its subdomains, else any; "unknown" when none validates.
func (r *spfRun) validatedPTR() string {
	if r.ptrName != nil {
		return *r.ptrName
	}
	domain := r.env.domain
	names, _ := r.ptrNames("")
	best := "unknown"
	rank := 0
	for _, name := range names {
		score := 1
		if hasDomainSuffix(name, domain) {
			score = 2
		}
		if strings.EqualFold(name, domain) {
			score = 3
		}
		if score > rank && r.validates(name, "") {
			best, rank = name, score
		}
	}
	r.ptrName = &best
	return best
}

// explain computes the exp= explanation for a fail result. Any problem (DNS,
// zero or several records, bad macros, non-ASCII text) falls back to the default
// (RFC 7208 6.2); these lookups count against no limit.
func (r *spfRun) explain(rec *spfRecord, domain string) string {
	r.env.domain = domain
	def := r.defaultExplanation()
	if rec.exp == nil {
		return def
	}
	target, ok := r.targetName(rec.exp, domain)
	if !ok {
		return def
	}
	ans, err := r.lookup(target, dns.TypeTXT, "exp")
	if err != nil {
		return def
	}
	txts := ans.TXT()
	if len(txts) != 1 || !isASCII(txts[0]) {
		return def
	}
	ms, err := parseMacroString(txts[0], true)
	if err != nil {
		return def
	}
	r.env.domain = domain
	return ms.expand(&r.env)
}

func (r *spfRun) defaultExplanation() string {
	ms, err := parseMacroString(r.e.DefaultExplanation, true)
	if err != nil {
		return r.e.DefaultExplanation
	}
	return ms.expand(&r.env)
}
