package sendingdomain

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Limits of a preview request.
const (
	maxPreviewValue = 4096
	maxPreviewZone  = 64 << 10
	maxPreviewDKIM  = 10
)

// PreviewDKIM is a DKIM key record the tenant intends to publish at a selector.
type PreviewDKIM struct {
	Selector string
	Value    string
}

// Preview is what a tenant intends to publish: single records, or a zone-file snippet
// with any number of TXT records (absolute names, or relative to the domain's zone).
type Preview struct {
	SPF       string
	Ownership string
	DMARC     string
	DKIM      []PreviewDKIM
	Zone      string
}

// PreviewResult is what the checks would find if the records were published.
type PreviewResult struct {
	// Outcome is what the domain's required checks would give (pass, fail, temperror).
	Outcome string
	Results []dnscheck.CheckResult
	// Names are the names whose TXT records the preview replaced.
	Names []string
}

// Preview runs the domain's checks as if the intended records were published over what
// DNS has now (see dnscheck.Overlay): SPF is evaluated with live DNS for everything not
// overridden — includes, lookup counts, void lookups, duplicate records. Nothing is
// stored and the domain's status does not change.
func (s *Service) Preview(ctx context.Context, tenantID, id string, p Preview) (*PreviewResult, error) {
	d, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	intended, err := s.intended(d, p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	checker := dnscheck.NewChecker(dnscheck.NewOverlay(s.lookuper, intended))
	checker.NowFunc = s.now
	results := s.runChecksWith(ctx, checker, d)
	out := &PreviewResult{Outcome: judge(requiredResults(results, d.DKIMKeys)).outcome, Results: results}
	for name := range intended {
		out.Names = append(out.Names, name)
	}
	return out, nil
}

// intended maps a preview to TXT values by owner name, or refuses it field by field.
func (s *Service) intended(d *Domain, p Preview) (map[string][]string, error) {
	v := &validate.Error{}
	out := map[string][]string{}
	add := func(field, name, value string) {
		value = strings.TrimSpace(value)
		switch {
		case value == "":
		case len(value) > maxPreviewValue:
			v.Add(field, fmt.Sprintf("must be at most %d characters", maxPreviewValue))
		default:
			out[name] = append(out[name], value)
		}
	}
	add("spf", d.Name, p.SPF)
	add("ownership", d.Name, p.Ownership)
	add("dmarc", "_dmarc."+d.Name, p.DMARC)
	if len(p.DKIM) > maxPreviewDKIM {
		v.Add("dkim", fmt.Sprintf("must list at most %d records", maxPreviewDKIM))
	}
	for i, k := range p.DKIM {
		field := fmt.Sprintf("dkim[%d]", i)
		if _, ok := dns.IsDomainName(k.Selector); !ok || k.Selector == "" || strings.ContainsAny(k.Selector, " /") {
			v.Add(field+".selector", "must be a DKIM selector such as sw1")
			continue
		}
		if strings.TrimSpace(k.Value) == "" {
			v.Add(field+".value", "is required")
			continue
		}
		add(field+".value", strings.ToLower(k.Selector)+"._domainkey."+d.Name, k.Value)
	}
	if p.Zone != "" {
		s.zoneRecords(d, p.Zone, out, v)
	}
	if len(out) == 0 && len(v.Fields) == 0 {
		v.Add("spf", "give at least one record to preview: spf, ownership, dkim, dmarc or zone")
	}
	return out, v.Err()
}

// zoneRecords reads the TXT records of a zone-file snippet; names outside the domain's
// zone are refused, other record types ignored.
func (s *Service) zoneRecords(d *Domain, zone string, out map[string][]string, v *validate.Error) {
	if len(zone) > maxPreviewZone {
		v.Add("zone", fmt.Sprintf("must be at most %d bytes", maxPreviewZone))
		return
	}
	origin := zoneOf(d.Name)
	zp := dns.NewZoneParser(strings.NewReader(zone), dns.Fqdn(origin), "")
	zp.SetDefaultTTL(RecordTTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		txt, isTXT := rr.(*dns.TXT)
		if !isTXT {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(rr.Header().Name, "."))
		if name != origin && !strings.HasSuffix(name, "."+origin) {
			v.Add("zone", fmt.Sprintf("%s is outside the zone %s of this domain", name, origin))
			continue
		}
		var b strings.Builder
		for _, part := range txt.Txt {
			b.WriteString(unescapeZoneTXT(part))
		}
		out[name] = append(out[name], b.String())
	}
	if err := zp.Err(); err != nil {
		v.Add("zone", "is not a valid zone-file snippet: "+err.Error())
	}
}

// unescapeZoneTXT decodes the presentation escapes miekg/dns keeps in TXT strings.
func unescapeZoneTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isDigits3(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')*100 + (s[i+2]-'0')*10 + (s[i+3] - '0'))
			i += 3
			continue
		}
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isDigits3(s string) bool {
	return len(s) == 3 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'
}
