package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// SPFResultCode is one of the seven RFC 7208 results.
type SPFResultCode string

const (
	SPFPass      SPFResultCode = "pass"
	SPFFail      SPFResultCode = "fail"
	SPFSoftFail  SPFResultCode = "softfail"
	SPFNeutral   SPFResultCode = "neutral"
	SPFNone      SPFResultCode = "none"
	SPFPermError SPFResultCode = "permerror"
	SPFTempError SPFResultCode = "temperror"
)

// SPFProblem names why an evaluation ended in none, permerror or temperror, so
// callers can tell a customer what to fix without parsing messages.
type SPFProblem string

const (
	ProblemInvalidDomain   SPFProblem = "invalid_domain"
	ProblemNoRecord        SPFProblem = "no_record"
	ProblemMultipleRecords SPFProblem = "multiple_records"
	ProblemSyntax          SPFProblem = "syntax"
	ProblemLookupLimit     SPFProblem = "lookup_limit"
	ProblemVoidLimit       SPFProblem = "void_limit"
	ProblemMXLimit         SPFProblem = "mx_limit"
	ProblemIncludeNone     SPFProblem = "include_without_record"
	ProblemRedirectNone    SPFProblem = "redirect_without_record"
	ProblemDNS             SPFProblem = "dns"
	ProblemInvalidIP       SPFProblem = "invalid_ip"
)

const (
	// MaxDNSTerms is the RFC 7208 4.6.4 limit on include, a, mx, ptr, exists and
	// redirect per evaluation: it stops SPF from being used to amplify DNS traffic.
	MaxDNSTerms = 10
	// MaxVoidLookups is the RFC 7208 4.6.4 recommended limit on lookups that find
	// nothing (NXDOMAIN or NODATA).
	MaxVoidLookups = 2
	// maxNames is the limit on MX and PTR names looked at per mechanism.
	maxNames = 10
	// DefaultSPFTimeout bounds one whole evaluation; RFC 7208 4.6.4 asks for at
	// least 20 seconds.
	DefaultSPFTimeout = 20 * time.Second
	// DefaultSPFExplanation is used for fail results when the record gives none.
	DefaultSPFExplanation = "%{i} is not allowed to send mail for %{d} according to its SPF record"
	// maxDepth guards recursion even if lookup counting were bypassed.
	maxDepth = 20
)

// SPFLookup is one DNS query made during an evaluation.
type SPFLookup struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Result  string   `json:"result"`
	Records []string `json:"records,omitempty"`
	Server  string   `json:"server,omitempty"`
	Term    string   `json:"term,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// SPFResult is the outcome of check_host() with what is needed to explain it.
type SPFResult struct {
	Result      SPFResultCode `json:"result"`
	Domain      string        `json:"domain"`
	IP          string        `json:"ip"`
	Sender      string        `json:"sender"`
	Helo        string        `json:"helo,omitempty"`
	Record      string        `json:"record,omitempty"`
	Mechanism   string        `json:"mechanism,omitempty"`
	IncludePath []string      `json:"include_path,omitempty"`
	Explanation string        `json:"explanation,omitempty"`
	Problem     SPFProblem    `json:"problem,omitempty"`
	Message     string        `json:"message,omitempty"`
	DNSLookups  int           `json:"dns_lookups"`
	VoidLookups int           `json:"void_lookups"`
	Resolver    string        `json:"resolver,omitempty"`
	Trace       []SPFLookup   `json:"trace"`
}

// SPFEvaluator runs RFC 7208 check_host() over a Lookuper.
type SPFEvaluator struct {
	dns Lookuper
	// DefaultExplanation (a macro-string) is used for fail when the record has no usable exp=.
	DefaultExplanation string
	// Receiver is the %{r} domain in explanations.
	Receiver string
	// Timeout bounds one evaluation.
	Timeout time.Duration
	// NowFunc gives %{t}; nil means time.Now.
	NowFunc func() time.Time
}

// NewSPFEvaluator returns an evaluator with RFC defaults.
func NewSPFEvaluator(lookuper Lookuper) *SPFEvaluator {
	return &SPFEvaluator{dns: lookuper, DefaultExplanation: DefaultSPFExplanation, Timeout: DefaultSPFTimeout}
}

// spfError ends an evaluation with permerror or temperror.
type spfError struct {
	result  SPFResultCode
	problem SPFProblem
	msg     string
}

func (e *spfError) Error() string { return e.msg }

func permErr(p SPFProblem, format string, args ...any) error {
	return &spfError{result: SPFPermError, problem: p, msg: fmt.Sprintf(format, args...)}
}

// spfRun is the state of one evaluation: counters shared by every nested record.
type spfRun struct {
	e       *SPFEvaluator
	ctx     context.Context
	env     macroEnv
	lookups int
	voids   int
	trace   []SPFLookup
	server  string
	ptrName *string
}

// hostOutcome is what one check_host() call (for one domain) produced.
type hostOutcome struct {
	result      SPFResultCode
	record      string
	mechanism   string
	path        []string
	explanation string
	err         *spfError
}

// CheckHost evaluates whether ip may send mail for domain (RFC 7208 check_host()).
// sender is the MAIL FROM address (empty: postmaster@helo); domain may be empty to
// use the sender's domain. The result is never an error: DNS trouble is temperror.
func (e *SPFEvaluator) CheckHost(ctx context.Context, ip net.IP, domain, sender, helo string) SPFResult {
	addr, ok := netip.AddrFromSlice(ip)
	r := e.newRun(addr.Unmap(), domain, sender, helo)
	res := SPFResult{Domain: r.env.domain, Sender: r.env.sender, Helo: helo}
	if ok {
		res.IP = addr.Unmap().String()
	}
	switch {
	case !ok:
		res.Result, res.Problem, res.Message = SPFPermError, ProblemInvalidIP, "no valid client IP address was given"
	case !validInitialDomain(r.env.domain):
		res.Result, res.Problem = SPFNone, ProblemInvalidDomain
		res.Message = fmt.Sprintf("%q is not a fully qualified domain name", r.env.domain)
	default:
		timeout := cmp.Or(e.Timeout, DefaultSPFTimeout)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r.ctx = ctx
		r.fill(&res, r.checkHost(r.env.domain, "", 0, true))
	}
	res.Trace = r.trace
	if res.Trace == nil {
		res.Trace = []SPFLookup{} // JSON [] rather than null
	}
	return res
}

func (e *SPFEvaluator) newRun(ip netip.Addr, domain, sender, helo string) *spfRun {
	if sender == "" {
		sender = "postmaster@" + cmp.Or(helo, domain)
	}
	local, senderDomain := "postmaster", sender
	if at := strings.LastIndexByte(sender, '@'); at >= 0 {
		local, senderDomain = cmp.Or(sender[:at], "postmaster"), sender[at+1:]
		sender = local + "@" + senderDomain
	}
	now := time.Now
	if e.NowFunc != nil {
		now = e.NowFunc
	}
	r := &spfRun{e: e, ctx: context.Background()}
	r.env = macroEnv{
		sender: sender, local: local, senderDomain: senderDomain,
		domain: normalizeDomain(cmp.Or(domain, senderDomain)), helo: helo, ip: ip,
		receiver: e.Receiver, timestamp: now().Unix(), ptrFunc: r.validatedPTR,
	}
	return r
}

func (r *spfRun) fill(res *SPFResult, out hostOutcome) {
	res.Result, res.Record, res.Mechanism = out.result, out.record, out.mechanism
	res.Explanation = out.explanation
	if out.result == SPFPass {
		res.IncludePath = out.path
	}
	if out.err != nil {
		res.Problem, res.Message = out.err.problem, out.err.msg
	}
	res.DNSLookups, res.VoidLookups, res.Resolver = r.lookups, r.voids, r.server
}

// normalizeDomain drops the trailing dot and converts internationalised names to
// their A-label form; names that cannot be converted are kept and fail validation.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if isASCII(d) {
		return d
	}
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return a
	}
	return d
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validInitialDomain applies RFC 7208 4.3: a malformed, non-FQDN or literal domain
// gives "none" without any lookup.
func validInitialDomain(d string) bool {
	labels := strings.Split(d, ".")
	if !validDNSName(d) || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return !isDigits(labels[len(labels)-1])
}

// validDNSName is true when a query can be composed for d: 1-63 byte labels and at
// most 253 bytes in all.
func validDNSName(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// checkHost evaluates the record of domain, reached through the term via (empty at
// the top). top is false inside include, whose explanation is never used.
func (r *spfRun) checkHost(domain, via string, depth int, top bool) hostOutcome {
	out := hostOutcome{path: []string{domain}}
	if depth > maxDepth {
		return out.fail(permErr(ProblemLookupLimit, "include and redirect nest too deeply"))
	}
	r.env.domain = domain
	raw, err := r.fetchRecord(domain, via)
	if err != nil {
		return out.fail(err)
	}
	if raw == "" {
		out.result = SPFNone
		out.err = &spfError{result: SPFNone, problem: ProblemNoRecord, msg: fmt.Sprintf("%s publishes no SPF record", domain)}
		return out
	}
	out.record = raw
	rec, err := parseSPF(raw)
	if err != nil {
		return out.fail(permErr(ProblemSyntax, "the SPF record of %s is invalid: %v", domain, err))
	}
	return r.evalRecord(rec, domain, depth, top, out)
}

func (o hostOutcome) fail(err error) hostOutcome {
	var se *spfError
	if !errors.As(err, &se) {
		se = &spfError{result: SPFTempError, problem: ProblemDNS, msg: err.Error()}
	}
	o.result, o.err = se.result, se
	return o
}

func (r *spfRun) evalRecord(rec *spfRecord, domain string, depth int, top bool, out hostOutcome) hostOutcome {
	for _, t := range rec.terms {
		r.env.domain = domain
		matched, sub, err := r.evalTerm(t, domain, depth)
		if err != nil {
			out.mechanism = t.raw
			return out.fail(err)
		}
		if matched {
			out.result, out.mechanism = qualifierResult(t.qualifier), t.raw
			out.path = append(out.path, sub...)
			if out.result == SPFFail && top {
				out.explanation = r.explain(rec, domain)
			}
			return out
		}
	}
	if rec.redirect != nil {
		return r.redirect(rec, domain, depth, top, out)
	}
	out.result = SPFNeutral
	return out
}

func (r *spfRun) redirect(rec *spfRecord, domain string, depth int, top bool, out hostOutcome) hostOutcome {
	if err := r.countTerm(); err != nil {
		return out.fail(err)
	}
	target, ok := r.targetName(rec.redirect, domain)
	if !ok {
		return out.fail(permErr(ProblemRedirectNone, "redirect=%s is not a valid domain name", target))
	}
	sub := r.checkHost(target, "redirect="+target, depth+1, top)
	if sub.result == SPFNone {
		return out.fail(permErr(ProblemRedirectNone, "redirect=%s points to a domain without an SPF record", target))
	}
	sub.path = append(out.path, sub.path...)
	return sub
}

func qualifierResult(q byte) SPFResultCode {
	switch q {
	case '-':
		return SPFFail
	case '~':
		return SPFSoftFail
	case '?':
		return SPFNeutral
	}
	return SPFPass
}

// fetchRecord returns the single SPF record of domain, "" when there is none.
func (r *spfRun) fetchRecord(domain, via string) (string, error) {
	ans, err := r.lookup(domain, dns.TypeTXT, via)
	if err != nil {
		return "", r.dnsErr(err)
	}
	var found []string
	for _, txt := range ans.TXT() {
		if IsSPFRecord(txt) {
			found = append(found, txt)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", permErr(ProblemMultipleRecords, "%s publishes %d SPF records; exactly one is allowed", domain, len(found))
}

// dnsErr maps a lookup error to temperror; permanent DNS misconfigurations
// (CNAME loops) give permerror.
func (r *spfRun) dnsErr(err error) error {
	var le *LookupError
	if errors.As(err, &le) && !le.Temporary() {
		return &spfError{result: SPFPermError, problem: ProblemDNS, msg: err.Error()}
	}
	return &spfError{result: SPFTempError, problem: ProblemDNS, msg: err.Error()}
}

func (r *spfRun) countTerm() error {
	r.lookups++
	if r.lookups > MaxDNSTerms {
		return permErr(ProblemLookupLimit, "more than %d DNS-querying mechanisms and redirects", MaxDNSTerms)
	}
	return nil
}

func (r *spfRun) countVoid(ans *Answer) error {
	if !ans.Void() {
		return nil
	}
	r.voids++
	if r.voids > MaxVoidLookups {
		return permErr(ProblemVoidLimit, "more than %d DNS lookups found nothing", MaxVoidLookups)
	}
	return nil
}

// targetName expands a domain-spec (or takes the current domain) into a name to
// query; ok is false when no query can be composed from it.
func (r *spfRun) targetName(spec macroString, domain string) (string, bool) {
	r.env.domain = domain // an include evaluated before may have changed it
	if spec == nil {
		return domain, validDNSName(domain)
	}
	name := strings.TrimSuffix(spec.expand(&r.env), ".")
	for len(name) > 253 {
		_, rest, found := strings.Cut(name, ".")
		if !found {
			break
		}
		name = rest
	}
	return name, validDNSName(name)
}

// lookup queries DNS and records the query in the trace.
func (r *spfRun) lookup(name string, qtype uint16, term string) (*Answer, error) {
	ans, err := r.e.dns.Lookup(r.ctx, name, qtype)
	entry := SPFLookup{Name: name, Type: dns.TypeToString[qtype], Term: term}
	var le *LookupError
	switch {
	case errors.As(err, &le):
		entry.Result, entry.Error, entry.Server = string(le.Kind), err.Error(), le.Server
	case err != nil:
		entry.Result, entry.Error = "error", err.Error()
	default:
		entry.Result, entry.Records, entry.Server = ans.Status(), summarize(ans), ans.Server
		r.server = cmp.Or(r.server, ans.Server)
	}
	r.trace = append(r.trace, entry)
	return ans, err
}

func summarize(ans *Answer) []string {
	switch ans.Type {
	case dns.TypeTXT:
		return ans.TXT()
	case dns.TypeA, dns.TypeAAAA:
		var out []string
		for _, ip := range ans.IPs() {
			out = append(out, ip.String())
		}
		return out
	}
	return ans.Hosts()
}
