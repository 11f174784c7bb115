package dnscheck

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// DMARCPolicy is a parsed DMARC record (RFC 7489 6.3).
type DMARCPolicy struct {
	// Domain is where the record was found: the domain or its organizational domain.
	Domain          string   `json:"domain"`
	Record          string   `json:"record"`
	Policy          string   `json:"policy"`
	SubdomainPolicy string   `json:"subdomain_policy,omitempty"`
	ADKIM           string   `json:"adkim"`
	ASPF            string   `json:"aspf"`
	Percent         int      `json:"pct"`
	RUA             []string `json:"rua,omitempty"`
	RUF             []string `json:"ruf,omitempty"`
	// Implied says why Policy is none although the record does not say so: RFC 7489
	// 6.6.3 reads a record with a missing or invalid p= (or sp=) but a valid rua as p=none.
	Implied string `json:"implied,omitempty"`
}

// CheckDMARC reads the DMARC policy of domain (falling back to its organizational
// domain like receivers do). It is informational: pass when a valid policy exists.
func (c *Checker) CheckDMARC(ctx context.Context, domain string) CheckResult {
	res, done := c.begin("dmarc", "v=DMARC1; p=none|quarantine|reject")
	domain = normalizeDomain(domain)
	candidates := []string{domain}
	if org, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil && !strings.EqualFold(org, domain) {
		candidates = append(candidates, org)
	}
	for _, d := range candidates {
		name := "_dmarc." + d
		ans, ok := c.lookupTXT(ctx, res, name)
		if !ok {
			return done()
		}
		var recs []string
		for _, t := range ans.TXT() {
			if isDMARCRecord(t) {
				recs = append(recs, t)
			}
		}
		if len(recs) > 0 {
			res.judgeDMARC(d, recs)
			return done()
		}
	}
	res.set(StatusFail, "dmarc.record_missing", "No DMARC record was found at _dmarc.%s. It is optional, but many receivers trust mail more with one, e.g. \"v=DMARC1; p=none\".", domain)
	return done()
}

func isDMARCRecord(txt string) bool {
	v, _, _ := strings.Cut(txt, ";")
	return strings.EqualFold(stripSpace(v), "v=DMARC1")
}

func (res *CheckResult) judgeDMARC(domain string, recs []string) {
	name := "_dmarc." + domain
	if len(recs) > 1 {
		res.set(StatusFail, "dmarc.syntax", "%s has %d DMARC records, so receivers ignore them; keep one and check again.", name, len(recs))
		return
	}
	pol, err := parseDMARC(recs[0])
	if err != nil {
		res.set(StatusFail, "dmarc.syntax", "The DMARC record at %s is invalid (%v); correct it and check again.", name, err)
		return
	}
	pol.Domain = domain
	res.DMARC = pol
	if pol.Implied != "" {
		res.set(StatusPass, "dmarc.policy_implied", "The DMARC record at %s has %s, so receivers read it as p=none because it names a report address (rua=); add an explicit p= tag.", name, pol.Implied)
		return
	}
	res.set(StatusPass, "dmarc.ok", "The DMARC policy at %s is p=%s.", name, pol.Policy)
}

// parseDMARC checks the tags receivers act on; unknown tags are ignored.
func parseDMARC(record string) (*DMARCPolicy, error) {
	tags, order, err := parseTags(record)
	if err != nil {
		return nil, err
	}
	if len(order) == 0 || order[0] != "v" || tags["v"] != "DMARC1" {
		return nil, fmt.Errorf("the record must start with v=DMARC1")
	}
	pol := &DMARCPolicy{Record: record, ADKIM: "r", ASPF: "r", Percent: 100}
	pol.RUA, pol.RUF = reportURIs(tags["rua"]), reportURIs(tags["ruf"])
	var policyErr error
	if pol.Policy, policyErr = oneOf(tags, "p", true, "none", "quarantine", "reject"); policyErr == nil {
		pol.SubdomainPolicy, policyErr = oneOf(tags, "sp", false, "none", "quarantine", "reject")
	}
	if policyErr != nil {
		if len(pol.RUA) == 0 {
			return nil, policyErr
		}
		// RFC 7489 6.6.3: act as if v=DMARC1; p=none was published.
		pol.Policy, pol.SubdomainPolicy, pol.Implied = "none", "", strings.TrimPrefix(policyErr.Error(), "the ")
	}
	if pol.ADKIM, err = oneOf(tags, "adkim", false, "r", "s"); err != nil {
		return nil, err
	}
	if pol.ASPF, err = oneOf(tags, "aspf", false, "r", "s"); err != nil {
		return nil, err
	}
	pol.ADKIM, pol.ASPF = cmp.Or(pol.ADKIM, "r"), cmp.Or(pol.ASPF, "r")
	if pct, ok := tags["pct"]; ok {
		n, err := strconv.Atoi(pct)
		if err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("pct=%s is not a number from 0 to 100", pct)
		}
		pol.Percent = n
	}
	return pol, nil
}

func oneOf(tags map[string]string, name string, required bool, allowed ...string) (string, error) {
	v, ok := tags[name]
	if !ok && !required {
		return "", nil
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, nil
		}
	}
	if !ok {
		return "", fmt.Errorf("the %s= tag is missing", name)
	}
	return "", fmt.Errorf("%s=%s is not one of %s", name, v, strings.Join(allowed, ", "))
}

// reportURIs returns the valid report URIs of a comma-separated list (RFC 7489 6.2:
// a URI with a scheme, optionally "!size"); invalid entries are ignored, as receivers
// ignore them, rather than making the whole record invalid.
func reportURIs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		bare, _, _ := strings.Cut(u, "!")
		parsed, err := url.Parse(bare)
		if err != nil || parsed.Scheme == "" || (parsed.Opaque == "" && parsed.Host == "") {
			continue
		}
		if strings.EqualFold(parsed.Scheme, "mailto") && !strings.Contains(parsed.Opaque, "@") {
			continue
		}
		out = append(out, u)
	}
	return out
}
