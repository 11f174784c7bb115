package dnscheck

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
)

// parseTags splits a DKIM or DMARC tag list ("k=v; k=v") with whitespace around
// tags and values allowed. Duplicate tags are an error (RFC 6376 3.2).
func parseTags(record string) (map[string]string, []string, error) {
	tags := map[string]string{}
	var order []string
	for _, part := range strings.Split(record, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("%q is not a tag=value pair", part)
		}
		if _, dup := tags[name]; dup {
			return nil, nil, fmt.Errorf("tag %s appears twice", name)
		}
		tags[name] = strings.TrimSpace(value)
		order = append(order, name)
	}
	return tags, order, nil
}

func stripSpace(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// isDKIMRecord picks DKIM key records among the TXT records at a selector.
func isDKIMRecord(txt string) bool {
	tags, _, err := parseTags(txt)
	if err != nil {
		return strings.Contains(txt, "p=")
	}
	_, hasP := tags["p"]
	return hasP || strings.EqualFold(tags["v"], "DKIM1")
}

// CheckDKIM verifies that the TXT record at <selector>._domainkey.<domain>
// (CNAMEs followed) carries expectedPublicKey, comparing p= without whitespace so
// keys split into several strings or lines still match.
func (c *Checker) CheckDKIM(ctx context.Context, selector, domain, expectedPublicKey string) CheckResult {
	want := stripSpace(expectedPublicKey)
	res, done := c.begin("dkim", "p="+want)
	name := selector + "._domainkey." + normalizeDomain(domain)
	ans, ok := c.lookupTXT(ctx, res, name)
	if !ok {
		return done()
	}
	var recs []string
	for _, t := range ans.TXT() {
		if isDKIMRecord(t) {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		res.set(StatusFail, "dkim.record_missing", "No DKIM key was found at %s; publish the TXT record with the key shown and check again.", name)
	case len(recs) > 1:
		res.set(StatusFail, "dkim.syntax", "%s has %d DKIM key records; keep only the one with the key shown and check again.", name, len(recs))
	default:
		res.compareDKIM(name, recs[0], want)
	}
	return done()
}

func (res *CheckResult) compareDKIM(name, record, want string) {
	tags, order, err := parseTags(record)
	switch {
	case err != nil:
		res.set(StatusFail, "dkim.syntax", "The DKIM record at %s is malformed (%v); publish the record shown and check again.", name, err)
		return
	case tags["v"] != "" && (order[0] != "v" || tags["v"] != "DKIM1"):
		res.set(StatusFail, "dkim.syntax", "The DKIM record at %s must start with v=DKIM1; publish the record shown and check again.", name)
		return
	}
	p, ok := tags["p"]
	p = stripSpace(p)
	switch {
	case !ok:
		res.set(StatusFail, "dkim.syntax", "The DKIM record at %s has no p= key; publish the record shown and check again.", name)
	case p == "":
		res.set(StatusFail, "dkim.key_revoked", "The DKIM record at %s has an empty p= value, which revokes the key; publish the record shown and check again.", name)
	case !validBase64(p):
		res.set(StatusFail, "dkim.syntax", "The p= value at %s is not valid base64; publish the record shown and check again.", name)
	case p != want:
		res.set(StatusFail, "dkim.key_mismatch", "The DKIM record at %s carries a different key; replace it with the record shown and check again.", name)
	default:
		res.set(StatusPass, "dkim.ok", "The DKIM key at %s matches.", name)
	}
}

func validBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}
