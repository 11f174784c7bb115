package sendingdomain

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

// Requirements of a record.
const (
	RequirementRequired    = "required"
	RequirementPlatform    = "required_for_platform"
	RequirementRecommended = "recommended"
	// RequirementOptional is a retiring DKIM key's record: keep it until RemoveAfter.
	RequirementOptional = "optional"
)

// Record is one DNS record a customer publishes, with its latest check.
type Record struct {
	// Purpose is the check it serves: ownership, spf, dkim or dmarc.
	Purpose     string
	Requirement string
	Type        string
	// Host is the owner name relative to Zone ("@" for the zone itself), as DNS hosting
	// panels ask for it; FQDN is the full name.
	Host  string
	Zone  string
	FQDN  string
	Value string
	TTL   int
	// Check is the latest result for this record; nil before the first check.
	Check *dnscheck.CheckResult
	// Selector, KeyState and RemoveAfter describe a dkim record's key: pending (publish it;
	// signing switches to it once it verifies), active (signing), or retiring (signing has
	// moved on; the record may be removed after RemoveAfter).
	Selector    string
	KeyState    string
	RemoveAfter *time.Time
}

// DefaultDMARCRecord is suggested when a domain has no DMARC policy: monitoring only, so
// it cannot hurt delivery.
const DefaultDMARCRecord = "v=DMARC1; p=none"

// Records lists what d must publish. The SPF value merges the platform into the record the
// domain published at the last check (or is a new record when it had none), and the DMARC
// entry shows the policy found or, when there is none, a suggestion.
func (s *Service) Records(d *Domain) []Record {
	zone := zoneOf(d.Name)
	rec := func(purpose, req, fqdn, value string) Record {
		return Record{
			Purpose: purpose, Requirement: req, Type: "TXT", Zone: zone, FQDN: fqdn, Host: relative(fqdn, zone),
			Value: value, TTL: RecordTTL, Check: d.Result(purpose),
		}
	}
	out := []Record{rec(CheckOwnership, RequirementRequired, d.Name, s.cfg.VerificationPrefix+"="+d.VerificationToken)}
	if s.cfg.SPFChecked() {
		out = append(out, rec(CheckSPF, RequirementPlatform, d.Name, s.spfValue(d)))
	}
	for _, k := range d.DKIMKeys {
		r := rec(CheckDKIM, RequirementRequired, k.Selector+"._domainkey."+d.Name, k.Record())
		r.Selector, r.KeyState, r.RemoveAfter, r.Check = k.Selector, k.State, k.RetireAfter, d.dkimResult(k.Selector)
		if k.State == KeyRetiring {
			r.Requirement, r.Check = RequirementOptional, nil
		}
		out = append(out, r)
	}
	dmarcName, dmarcValue := "_dmarc."+d.Name, DefaultDMARCRecord
	if r := d.Result(CheckDMARC); r != nil && r.Status == dnscheck.StatusPass && r.DMARC != nil {
		dmarcName, dmarcValue = "_dmarc."+r.DMARC.Domain, r.DMARC.Record
	}
	return append(out, rec(CheckDMARC, RequirementRecommended, dmarcName, dmarcValue))
}

// spfValue is the domain's current SPF record when it already authorises the platform,
// and otherwise the record to publish instead of it.
func (s *Service) spfValue(d *Domain) string {
	r := d.Result(CheckSPF)
	switch {
	case r != nil && r.Status == dnscheck.StatusPass && r.SPF != nil && r.SPF.Record != "" && r.Code == "spf.ok":
		return r.SPF.Record
	case r != nil && r.SPF != nil && r.SPF.SuggestedRecord != "":
		return r.SPF.SuggestedRecord
	}
	return dnscheck.SuggestSPFRecordTerm("", dnscheck.PlatformSPFTerm(s.cfg.SPFInclude, s.cfg.SPFNetworks))
}

// keyNote says, in a zone-file comment, what a DKIM key's state means for its record.
func (r Record) keyNote() string {
	switch {
	case r.KeyState == KeyPending:
		return ": new key " + r.Selector + ", signing switches to it once this record verifies"
	case r.KeyState == KeyRetiring && r.RemoveAfter != nil:
		return ": retiring key " + r.Selector + ", may be removed after " + r.RemoveAfter.Format(time.RFC3339)
	case r.KeyState == KeyActive:
		return ": signing key " + r.Selector
	}
	return ""
}

// dkimResult is the latest DKIM result of selector.
func (d *Domain) dkimResult(selector string) *dnscheck.CheckResult {
	for i := range d.Results {
		if r := &d.Results[i]; r.Check == CheckDKIM && (r.Selector == selector || (r.Selector == "" && selector == d.DKIMSelector)) {
			return r
		}
	}
	return nil
}

// zoneOf guesses the DNS zone a domain is managed in: its registrable domain.
func zoneOf(domain string) string {
	if z, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil {
		return z
	}
	return domain
}

func relative(fqdn, zone string) string {
	if fqdn == zone {
		return "@"
	}
	if rel, ok := strings.CutSuffix(fqdn, "."+zone); ok {
		return rel
	}
	return fqdn + "."
}

// maxTXTString is the longest character-string a TXT record holds.
const maxTXTString = 255

// ZoneFile renders records as a BIND zone-file snippet: absolute names, one record per
// line, long values split into 255-byte strings.
func ZoneFile(d *Domain, recs []Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "; Sendwerk records for %s (%s).\n", d.Name, d.ID)
	fmt.Fprintf(&b, "; Paste into the zone of %s. A domain has one SPF record: the spf line replaces any existing one.\n", zoneOf(d.Name))
	width := 0
	for _, r := range recs {
		width = max(width, len(r.FQDN)+1)
	}
	for _, r := range recs {
		fmt.Fprintf(&b, "\n; %s (%s)%s\n", r.Purpose, strings.ReplaceAll(r.Requirement, "_", " "), r.keyNote())
		fmt.Fprintf(&b, "%-*s %d IN %s %s\n", width, r.FQDN+".", r.TTL, r.Type, txtStrings(r.Value))
	}
	return b.String()
}

// txtStrings splits value into quoted character-strings of at most 255 bytes each,
// escaping quotes and backslashes after splitting so no escape is cut in two.
func txtStrings(value string) string {
	var parts []string
	for len(value) > maxTXTString {
		parts = append(parts, quoteTXT(value[:maxTXTString]))
		value = value[maxTXTString:]
	}
	parts = append(parts, quoteTXT(value))
	return strings.Join(parts, " ")
}

func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
