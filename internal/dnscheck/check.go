package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// CheckStatus is the outcome of a check. temperror means DNS did not answer
// usably; it must never count as a failure of the domain.
type CheckStatus string

const (
	StatusPass      CheckStatus = "pass"
	StatusFail      CheckStatus = "fail"
	StatusTempError CheckStatus = "temperror"
)

// CheckResult is what every check returns: a stable code for programs, a message
// for customers, and the evidence (expected vs observed records).
type CheckResult struct {
	Check     string        `json:"check"`
	Selector  string        `json:"selector,omitempty"` // the DKIM key a dkim result is about
	Status    CheckStatus   `json:"status"`
	Code      string        `json:"code"`
	Message   string        `json:"message"`
	Expected  string        `json:"expected"`
	Observed  []string      `json:"observed"`
	Resolver  string        `json:"resolver,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
	CheckedAt time.Time     `json:"checked_at"`
	SPF       *SPFDetails   `json:"spf,omitempty"`
	DMARC     *DMARCPolicy  `json:"dmarc,omitempty"`
}

// Checker runs the sending-domain checks over one Lookuper.
type Checker struct {
	dns Lookuper
	spf *SPFEvaluator
	// NowFunc stamps CheckedAt; nil means time.Now.
	NowFunc func() time.Time
}

// NewChecker returns a Checker that asks lookuper (usually a *Resolver).
func NewChecker(lookuper Lookuper) *Checker {
	return &Checker{dns: lookuper, spf: NewSPFEvaluator(lookuper)}
}

func (c *Checker) now() time.Time {
	if c.NowFunc != nil {
		return c.NowFunc()
	}
	return time.Now()
}

// begin starts a result; the returned func fills in the duration when the check ends.
func (c *Checker) begin(check, expected string) (*CheckResult, func() CheckResult) {
	start := time.Now()
	res := &CheckResult{Check: check, Expected: expected, Observed: []string{}, CheckedAt: c.now()}
	return res, func() CheckResult {
		res.Duration = time.Since(start)
		return *res
	}
}

func (res *CheckResult) set(status CheckStatus, code, format string, args ...any) {
	res.Status, res.Code, res.Message = status, code, fmt.Sprintf(format, args...)
}

// lookupTXT fetches the TXT records at name, or records why it could not and
// returns false.
func (c *Checker) lookupTXT(ctx context.Context, res *CheckResult, name string) (*Answer, bool) {
	ans, err := c.dns.Lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		res.dnsFailure(err, name)
		return nil, false
	}
	res.Resolver = ans.Server
	res.Observed = append(res.Observed[:0], ans.TXT()...)
	return ans, true
}

// dnsFailure words a lookup error: temporary trouble is temperror (dns.timeout,
// dns.servfail, dns.refused, dns.network, dns.error); a CNAME loop or an
// unqueryable name is a real fault of the domain and fails.
func (res *CheckResult) dnsFailure(err error, name string) {
	var le *LookupError
	if !errors.As(err, &le) {
		res.set(StatusTempError, "dns.error", "Looking up %s failed (%v); we will check again.", name, err)
		return
	}
	res.Resolver = le.Server
	switch le.Kind {
	case KindTimeout:
		res.set(StatusTempError, "dns.timeout", "The DNS servers did not answer in time for %s; this is usually temporary and we will check again.", name)
	case KindServFail:
		res.set(StatusTempError, "dns.servfail", "The DNS servers reported a failure (SERVFAIL) for %s; this is usually temporary, but if it persists, check that the domain's name servers work.", name)
	case KindRefused:
		res.set(StatusTempError, "dns.refused", "The DNS server refused to answer for %s; we will check again.", name)
	case KindNetwork:
		res.set(StatusTempError, "dns.network", "The DNS servers could not be reached for %s; we will check again.", name)
	case KindNotRecursive:
		res.set(StatusTempError, "dns.not_recursive", "The DNS server %s answered for %s with a referral or without recursion: it is not a recursive resolver, so its answer says nothing about the record. Set SENDWERK_DNS_SERVERS to recursive resolvers; we will check again.", le.Server, name)
	case KindCNAMELoop:
		res.set(StatusFail, "dns.cname_loop", "The CNAME records at %s form a loop or a chain that is too long; fix the CNAME records and check again.", name)
	case KindInvalidName:
		res.set(StatusFail, "dns.invalid_name", "%s is not a valid domain name.", name)
	default:
		res.set(StatusTempError, "dns.error", "The DNS lookup of %s failed (%s); we will check again.", name, le.Kind)
	}
}

// CheckOwnership looks for expectedTXT (e.g. "sendwerk-verification=<hex>") among
// the TXT records at domain.
func (c *Checker) CheckOwnership(ctx context.Context, domain, expectedTXT string) CheckResult {
	res, done := c.begin("ownership", expectedTXT)
	domain = normalizeDomain(domain)
	ans, ok := c.lookupTXT(ctx, res, domain)
	if !ok {
		return done()
	}
	want := strings.TrimSpace(expectedTXT)
	prefix, _, _ := strings.Cut(want, "=")
	var similar, quoted bool
	for _, txt := range ans.TXT() {
		if strings.EqualFold(strings.TrimSpace(txt), want) {
			res.set(StatusPass, "ownership.ok", "The verification record was found at %s.", domain)
			return done()
		}
		unquoted := strings.TrimSpace(strings.Trim(strings.TrimSpace(txt), `"'“”`))
		quoted = quoted || (unquoted != strings.TrimSpace(txt) && strings.EqualFold(unquoted, want))
		similar = similar || strings.HasPrefix(strings.ToLower(strings.TrimSpace(txt)), strings.ToLower(prefix)+"=")
	}
	if quoted {
		// DNS panels that quote values themselves publish a typed-in "…" with the quotes.
		res.set(StatusFail, "ownership.quoted", "The verification record at %s contains literal quotation marks; remove the quotation marks from the value (enter %s without them) and check again.", domain, want)
		return done()
	}
	if similar {
		res.set(StatusFail, "ownership.token_mismatch", "A %s= TXT record was found at %s, but it does not carry the expected value; replace it with %s and check again.", prefix, domain, want)
		return done()
	}
	res.set(StatusFail, "ownership.token_missing", "No TXT record %s was found at %s; publish it and check again.", want, domain)
	return done()
}
