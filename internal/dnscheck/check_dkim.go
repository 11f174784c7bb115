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

// DKIM key algorithms (the k= tag of a key record).
const (
	DKIMKeyRSA     = "rsa"
	DKIMKeyEd25519 = "ed25519"
)

// DKIMKey is a key a domain should publish: where, which algorithm, and the p= value.
type DKIMKey struct {
	Selector string
	// Algorithm is DKIMKeyRSA or DKIMKeyEd25519; "" means rsa.
	Algorithm string
	// PublicKey is the p= value: base64 of the DER SubjectPublicKeyInfo for RSA, of the
	// raw 32-byte key for Ed25519 (RFC 8463).
	PublicKey string
}

// CheckDKIM verifies the RSA key record at <selector>._domainkey.<domain>; see CheckDKIMKey.
func (c *Checker) CheckDKIM(ctx context.Context, selector, domain, expectedPublicKey string) CheckResult {
	return c.CheckDKIMKey(ctx, domain, DKIMKey{Selector: selector, Algorithm: DKIMKeyRSA, PublicKey: expectedPublicKey})
}

// CheckDKIMKey verifies that the TXT record at <selector>._domainkey.<domain> (CNAMEs
// followed) carries key and that receivers would use it for mail signed with it: the
// tags are read as RFC 6376 3.6.1 says verifiers read them (v= first, k= the key type,
// h= allowing sha256, s= allowing email, t=y testing), p= compared without whitespace so
// keys split into several strings or lines still match.
func (c *Checker) CheckDKIMKey(ctx context.Context, domain string, key DKIMKey) CheckResult {
	want := stripSpace(key.PublicKey)
	alg := key.Algorithm
	if alg == "" {
		alg = DKIMKeyRSA
	}
	res, done := c.begin("dkim", "v=DKIM1; k="+alg+"; p="+want)
	res.Selector = key.Selector
	name := key.Selector + "._domainkey." + normalizeDomain(domain)
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
		res.compareDKIM(name, recs[0], want, alg)
	}
	return done()
}

func (res *CheckResult) compareDKIM(name, record, want, alg string) {
	tags, order, err := parseTags(record)
	if err != nil {
		res.set(StatusFail, "dkim.syntax", "The DKIM record at %s is malformed (%v); publish the record shown and check again.", name, err)
		return
	}
	if !res.dkimTagsUsable(name, tags, order, alg) {
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
	case hasFlag(tags["t"], "y"):
		res.set(StatusPass, "dkim.testing", "The DKIM key at %s matches, but t=y marks the domain as testing DKIM: receivers may treat failing signatures like unsigned mail. Remove t=y once mail verifies.", name)
	default:
		res.set(StatusPass, "dkim.ok", "The DKIM key at %s matches.", name)
	}
}

// dkimTagsUsable applies the tags a verifier checks before it uses a key; a record that
// fails one of them makes every signature fail however right p= is.
func (res *CheckResult) dkimTagsUsable(name string, tags map[string]string, order []string, alg string) bool {
	k := tags["k"]
	if _, ok := tags["k"]; !ok {
		k = DKIMKeyRSA // RFC 6376 3.6.1: k= defaults to rsa
	}
	switch {
	case tags["v"] != "" && (order[0] != "v" || tags["v"] != "DKIM1"):
		res.set(StatusFail, "dkim.syntax", "The DKIM record at %s must start with v=DKIM1 (or leave v= out); publish the record shown and check again.", name)
	case !strings.EqualFold(strings.TrimSpace(k), alg):
		res.set(StatusFail, "dkim.key_type_mismatch", "The DKIM record at %s says k=%s, but this key is %s: receivers would reject every signature. Change it to k=%s (or publish the record shown) and check again.", name, k, alg, alg)
	case tags["h"] != "" && !hasFlag(tags["h"], "sha256"):
		res.set(StatusFail, "dkim.hash_not_allowed", "The DKIM record at %s allows only h=%s, but signatures use sha256: receivers would reject them. Remove the h= tag (or add sha256) and check again.", name, tags["h"])
	case tags["s"] != "" && !hasFlag(tags["s"], "email") && !hasFlag(tags["s"], "*"):
		res.set(StatusFail, "dkim.service_not_email", "The DKIM record at %s is limited to s=%s, so receivers may not use it for e-mail. Remove the s= tag (or use s=email) and check again.", name, tags["s"])
	default:
		return true
	}
	return false
}

// hasFlag reports whether a colon-separated tag value lists flag (case-insensitively).
func hasFlag(list, flag string) bool {
	for _, f := range strings.Split(list, ":") {
		if strings.EqualFold(strings.TrimSpace(f), flag) {
			return true
		}
	}
	return false
}

func validBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}
