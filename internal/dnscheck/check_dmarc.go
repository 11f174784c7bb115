package dnscheck

import (
	"cmp"
	"context"
	"fmt"
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
	if pol.Policy, err = oneOf(tags, "p", true, "none", "quarantine", "reject"); err != nil {
		return nil, err
	}
	if pol.SubdomainPolicy, err = oneOf(tags, "sp", false, "none", "quarantine", "reject"); err != nil {
		return nil, err
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
	if pol.RUA, err = reportURIs(tags["rua"], "rua"); err != nil {
		return nil, err
	}
	pol.RUF, err = reportURIs(tags["ruf"], "ruf")
	return pol, err
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

// reportURIs parses a comma-separated list of report addresses; only mailto:
// URIs are in practical use.
func reportURIs(v, tag string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		addr, ok := strings.CutPrefix(strings.ToLower(u), "mailto:")
		if !ok || !strings.Contains(addr, "@") {
			return nil, fmt.Errorf("%s=%s is not a list of mailto: addresses", tag, v)
		}
		out = append(out, u)
	}
	return out, nil
}
