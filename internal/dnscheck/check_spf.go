package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// SPFDetails is the SPF-specific evidence of a CheckSPF result.
type SPFDetails struct {
	Record string `json:"record,omitempty"`
	// Lookups is the number of DNS-querying terms in the whole include/redirect
	// tree: the most any receiver can need, which must stay within 10.
	Lookups int `json:"lookups"`
	// IncludePath leads from the domain to the record that includes the platform.
	IncludePath []string `json:"include_path,omitempty"`
	// SuggestedRecord is the domain's record with the platform include added.
	SuggestedRecord string `json:"suggested_record,omitempty"`
	// Evaluations holds check_host() for each platform IP.
	Evaluations []SPFResult `json:"evaluations,omitempty"`
}

// CheckSPF verifies that domain publishes exactly one valid SPF record that
// authorises the platform: every platform IP evaluates to pass, or the platform
// include is reached in the include/redirect tree (before any "all").
func (c *Checker) CheckSPF(ctx context.Context, domain string, platformIPs []net.IP, platformInclude string) CheckResult {
	var nets []netip.Prefix
	for _, ip := range platformIPs {
		if a, ok := netip.AddrFromSlice(ip); ok {
			a = a.Unmap()
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return c.CheckSPFNetworks(ctx, domain, nets, platformInclude)
}

// CheckSPFNetworks is CheckSPF for platform networks given as prefixes (a single
// address is a /32 or /128): a network is authorised when its first and last
// addresses both evaluate to pass.
func (c *Checker) CheckSPFNetworks(ctx context.Context, domain string, platformNets []netip.Prefix, platformInclude string) CheckResult {
	domain = normalizeDomain(domain)
	platformInclude = strings.TrimSuffix(platformInclude, ".")
	term := platformTerm(platformInclude, platformNets)
	res, done := c.begin("spf", term)
	res.SPF = &SPFDetails{SuggestedRecord: suggestWithTerm("", term)}
	ans, ok := c.lookupTXT(ctx, res, domain)
	if !ok {
		return done()
	}
	rec, ok := c.selectSPF(res, domain, ans.TXT(), term)
	if !ok {
		return done()
	}
	ips := sampleIPs(platformNets)
	w := &spfWalk{c: c, ctx: ctx, target: platformInclude, noIP: len(ips) == 0, env: macroEnv{
		sender: "postmaster@" + domain, local: "postmaster", senderDomain: domain, helo: domain,
		ip: firstIP(ips), ptrFunc: func() string { return "unknown" },
	}}
	if err := w.walk(domain, rec, []string{domain}, 0); err != nil {
		res.walkFailure(err, domain)
		return done()
	}
	res.SPF.Lookups, res.SPF.IncludePath = w.lookups, w.found
	if w.lookups > MaxDNSTerms {
		res.set(StatusFail, "spf.too_many_lookups", "The SPF record of %s needs %d DNS lookups when fully evaluated; receivers stop at %d and then treat it as broken. Remove includes you no longer use and check again.", domain, w.lookups, MaxDNSTerms)
		return done()
	}
	if w.found == nil && len(w.ipDependent) > 0 {
		res.set(StatusPass, "spf.indeterminate", "Whether the SPF record of %s authorises the platform depends on the sending address (%s uses IP macros), and this platform has no sending addresses configured: the platform operator must set SENDWERK_SPF_IPS so Sendwerk can evaluate it.", domain, w.ipDependent[0])
		return done()
	}
	c.evaluateIPs(ctx, res, domain, ips, term)
	return done()
}

// platformTerm is what the domain's record must contain: the platform include, or
// ip4:/ip6: terms for the platform networks when there is no include.
func platformTerm(include string, nets []netip.Prefix) string {
	if include != "" {
		return "include:" + include
	}
	var terms []string
	for _, p := range nets {
		mech := "ip6:"
		if p.Addr().Unmap().Is4() {
			mech = "ip4:"
		}
		if p.IsSingleIP() {
			terms = append(terms, mech+p.Addr().Unmap().String())
		} else {
			terms = append(terms, mech+p.Masked().String())
		}
	}
	return strings.Join(terms, " ")
}

// sampleIPs returns the addresses evaluated for the networks: the first and last of
// each (one for a single address).
func sampleIPs(nets []netip.Prefix) []net.IP {
	var out []net.IP
	for _, p := range nets {
		p = p.Masked()
		first := p.Addr()
		out = append(out, net.IP(first.AsSlice()))
		if last := lastAddr(p); last != first {
			out = append(out, net.IP(last.AsSlice()))
		}
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func firstIP(ips []net.IP) netip.Addr {
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			return a.Unmap()
		}
	}
	return netip.IPv4Unspecified()
}

// selectSPF picks the single SPF record among the TXT records and parses it.
func (c *Checker) selectSPF(res *CheckResult, domain string, txts []string, term string) (*spfRecord, bool) {
	var found []string
	for _, t := range txts {
		if IsSPFRecord(t) {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 0:
		res.set(StatusFail, "spf.record_missing", "No SPF record was found at %s; publish the TXT record %q and check again.", domain, res.SPF.SuggestedRecord)
		return nil, false
	case len(found) > 1:
		res.SPF.SuggestedRecord = suggestWithTerm(found[0], term)
		res.set(StatusFail, "spf.multiple_records", "%s publishes %d SPF records, and receivers then ignore all of them. Merge them into one record, for example %q, and check again.", domain, len(found), res.SPF.SuggestedRecord)
		return nil, false
	}
	res.SPF.Record = found[0]
	res.SPF.SuggestedRecord = suggestWithTerm(found[0], term)
	rec, err := parseSPF(found[0])
	if err != nil {
		res.set(StatusFail, "spf.syntax", "The SPF record at %s is invalid (%v); correct it and check again.", domain, errors.Unwrap(err))
		return nil, false
	}
	return rec, true
}

// evaluateIPs runs check_host() for each platform IP and decides the result.
func (c *Checker) evaluateIPs(ctx context.Context, res *CheckResult, domain string, ips []net.IP, term string) {
	allPass := len(ips) > 0
	for _, ip := range ips {
		ev := c.spf.CheckHost(ctx, ip, domain, "postmaster@"+domain, domain)
		res.SPF.Evaluations = append(res.SPF.Evaluations, ev)
		res.Resolver = cmp.Or(res.Resolver, ev.Resolver)
		if ev.Result == SPFTempError || ev.Result == SPFPermError {
			res.evalFailure(ev, domain)
			return
		}
		allPass = allPass && ev.Result == SPFPass
	}
	switch {
	case allPass && passedByAll(res.SPF.Evaluations):
		res.SPF.SuggestedRecord = suggestWithTerm(softenAll(res.SPF.Record), term)
		res.set(StatusPass, "spf.allows_all", "The SPF record of %s authorises the platform, but only because it ends in +all, which lets every server on the internet send as %s. Change it to %q and check again.", domain, domain, res.SPF.SuggestedRecord)
	case allPass:
		res.set(StatusPass, "spf.ok", "The SPF record of %s authorises the platform's sending addresses.", domain)
	case res.SPF.IncludePath != nil:
		res.set(StatusPass, "spf.ok", "The SPF record of %s contains %s.", domain, term)
	default:
		res.set(StatusFail, "spf.include_missing", "The SPF record of %s does not authorise the platform: %s is missing. Change the record to %q and check again.", domain, term, res.SPF.SuggestedRecord)
	}
}

// passedByAll is true when every evaluation passed on a bare "+all" (or "all").
func passedByAll(evs []SPFResult) bool {
	for _, ev := range evs {
		if !strings.EqualFold(strings.TrimPrefix(ev.Mechanism, "+"), "all") {
			return false
		}
	}
	return len(evs) > 0
}

// softenAll replaces a "+all" (or bare "all") term with "~all".
func softenAll(record string) string {
	f := strings.Fields(record)
	for i, t := range f {
		if strings.EqualFold(strings.TrimPrefix(t, "+"), "all") {
			f[i] = "~all"
		}
	}
	return strings.Join(f, " ")
}

// evalFailure words a temperror or permerror evaluation.
func (res *CheckResult) evalFailure(ev SPFResult, domain string) {
	switch {
	case ev.Result == SPFTempError:
		res.set(StatusTempError, tempCode(ev.Trace), "DNS did not answer while evaluating the SPF record of %s (%s); we will check again.", domain, ev.Message)
	case ev.Problem == ProblemLookupLimit:
		res.set(StatusFail, "spf.too_many_lookups", "Evaluating the SPF record of %s needs more than %d DNS lookups, so receivers treat it as broken. Remove includes you no longer use and check again.", domain, MaxDNSTerms)
	case ev.Problem == ProblemVoidLimit:
		res.set(StatusFail, "spf.void_lookups", "The SPF record of %s refers to more than %d names that do not exist or have no records, so receivers treat it as broken. Remove those mechanisms and check again.", domain, MaxVoidLookups)
	default:
		res.set(StatusFail, "spf.syntax", "The SPF record of %s cannot be evaluated: %s. Correct it and check again.", domain, ev.Message)
	}
}

// tempCode finds the DNS failure in the trace for a stable code.
func tempCode(trace []SPFLookup) string {
	for i := len(trace) - 1; i >= 0; i-- {
		switch ErrorKind(trace[i].Result) {
		case KindTimeout, KindServFail, KindRefused, KindNetwork:
			return "dns." + trace[i].Result
		}
	}
	return "dns.error"
}

// walkError is a problem found while walking the include/redirect tree.
type walkError struct {
	temporary error // a DNS failure, worded by dnsFailure
	msg       string
}

func (e *walkError) Error() string {
	if e.temporary != nil {
		return e.temporary.Error()
	}
	return e.msg
}

func (res *CheckResult) walkFailure(err error, domain string) {
	var we *walkError
	if errors.As(err, &we) && we.temporary != nil {
		res.dnsFailure(we.temporary, domain)
		return
	}
	res.set(StatusFail, "spf.syntax", "The SPF record of %s cannot be evaluated: %v. Correct it and check again.", domain, err)
}

// spfWalk visits every record reachable through include and redirect, in
// evaluation order, counting DNS-querying terms and looking for the platform include.
type spfWalk struct {
	c       *Checker
	ctx     context.Context
	target  string
	env     macroEnv
	lookups int
	found   []string
	// noIP: there is no platform address to expand IP macros (%{i}, %{v}, %{p}) with, so
	// includes and redirects that use them are not followed but listed in ipDependent.
	noIP        bool
	ipDependent []string
}

func (w *spfWalk) walk(domain string, rec *spfRecord, path []string, depth int) error {
	if depth > maxDepth || w.lookups > 4*MaxDNSTerms {
		return nil // far beyond the limit already: enough to report it
	}
	for _, t := range rec.terms {
		if t.mech == "all" {
			return nil // later terms and any redirect are never evaluated
		}
		if t.usesDNS() {
			w.lookups++
		}
		if t.mech == "include" {
			if err := w.follow(t.domain, domain, "include:", path, depth); err != nil {
				return err
			}
		}
	}
	if rec.redirect == nil {
		return nil
	}
	w.lookups++
	return w.follow(rec.redirect, domain, "redirect=", path, depth)
}

func (w *spfWalk) follow(spec macroString, domain, label string, path []string, depth int) error {
	if w.noIP && spec.usesIP() {
		w.ipDependent = append(w.ipDependent, label+spec.String())
		return nil
	}
	w.env.domain = domain
	target := strings.TrimSuffix(spec.expand(&w.env), ".")
	if !validDNSName(target) {
		return &walkError{msg: fmt.Sprintf("%s%s is not a valid domain name", label, target)}
	}
	next := append(append([]string{}, path...), target)
	if w.found == nil && strings.EqualFold(target, w.target) {
		w.found = next
	}
	for _, p := range path {
		if strings.EqualFold(p, target) {
			return &walkError{msg: fmt.Sprintf("%s%s loops back to a domain already on the path", label, target)}
		}
	}
	rec, err := w.fetch(target, label)
	if err != nil {
		return err
	}
	return w.walk(target, rec, next, depth+1)
}

func (w *spfWalk) fetch(name, label string) (*spfRecord, error) {
	ans, err := w.c.dns.Lookup(w.ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, &walkError{temporary: err}
	}
	var found []string
	for _, t := range ans.TXT() {
		if IsSPFRecord(t) {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, &walkError{msg: fmt.Sprintf("%s%s has %d SPF records instead of one", label, name, len(found))}
	}
	rec, err := parseSPF(found[0])
	if err != nil {
		return nil, &walkError{msg: fmt.Sprintf("the SPF record of %s (reached by %s%s) is invalid: %v", name, label, name, errors.Unwrap(err))}
	}
	return rec, nil
}

// SuggestSPFRecord returns the SPF record to publish so the platform is
// authorised: current with include:platformInclude inserted before its final
// "all" or redirect (or appended), or "v=spf1 include:X ~all" when there is none.
func SuggestSPFRecord(current, platformInclude string) string {
	return suggestWithTerm(current, "include:"+strings.TrimSuffix(platformInclude, "."))
}

// PlatformSPFTerm is what a domain's SPF record must contain to authorise the platform:
// "include:<include>", or ip4:/ip6: terms for its networks when there is no include.
func PlatformSPFTerm(include string, nets []netip.Prefix) string {
	return platformTerm(strings.TrimSuffix(include, "."), nets)
}

// SuggestSPFRecordTerm is SuggestSPFRecord for any platform term (see PlatformSPFTerm).
func SuggestSPFRecordTerm(current, term string) string { return suggestWithTerm(current, term) }

// suggestWithTerm adds term (one or more space-separated mechanisms) to current.
func suggestWithTerm(current, include string) string {
	current = strings.TrimSpace(current)
	if !IsSPFRecord(current) {
		return spfVersion + " " + include + " ~all"
	}
	terms := strings.Fields(current)[1:]
	at := len(terms)
	for i, t := range terms {
		bare := strings.ToLower(strings.TrimLeft(t, "+"))
		if bare == strings.ToLower(include) {
			return strings.Join(append([]string{spfVersion}, terms...), " ")
		}
		if at == len(terms) && (isAllTerm(t) || strings.HasPrefix(strings.ToLower(t), "redirect=")) {
			at = i
		}
	}
	out := append([]string{spfVersion}, terms[:at]...)
	out = append(out, include)
	return strings.Join(append(out, terms[at:]...), " ")
}

func isAllTerm(t string) bool {
	return strings.EqualFold(strings.TrimLeft(t, "+-~?"), "all")
}
