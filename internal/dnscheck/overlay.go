package dnscheck

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// Overlay is a Lookuper that answers TXT lookups of some names with records a tenant
// intends to publish, over what DNS has now: at such a name, each intended record
// replaces the live records of its kind (SPF, DMARC, DKIM key, or a "prefix=" token such
// as the ownership record) and live records of other kinds stay, as they would after
// publishing. Everything else — other names, includes, CNAMEs elsewhere — comes from base,
// so a preview counts lookups and finds duplicates exactly as a real check would.
type Overlay struct {
	base     Lookuper
	intended map[string][]string
}

var _ Lookuper = (*Overlay)(nil)

// OverlayServer is the Resolver reported for answers that contain intended records.
const OverlayServer = "preview"

// NewOverlay answers the names of intended (name -> TXT values, raw) from them.
func NewOverlay(base Lookuper, intended map[string][]string) *Overlay {
	o := &Overlay{base: base, intended: map[string][]string{}}
	for name, values := range intended {
		key := strings.ToLower(strings.TrimSuffix(name, "."))
		o.intended[key] = append(o.intended[key], values...)
	}
	return o
}

// Lookup answers from the intended records for their names and from base otherwise.
func (o *Overlay) Lookup(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	values, ok := o.intended[strings.ToLower(strings.TrimSuffix(name, "."))]
	if !ok || qtype != dns.TypeTXT {
		return o.base.Lookup(ctx, name, qtype)
	}
	replaced := map[string]bool{}
	for _, v := range values {
		replaced[txtKind(v)] = true
	}
	var kept []string
	if live, err := o.base.Lookup(ctx, name, qtype); err == nil {
		for _, t := range live.TXT() {
			if !replaced[txtKind(t)] {
				kept = append(kept, t)
			}
		}
	}
	ans := &Answer{Name: strings.TrimSuffix(name, "."), Type: qtype, Rcode: dns.RcodeSuccess, Server: OverlayServer}
	hdr := dns.RR_Header{Name: dns.Fqdn(ans.Name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}
	for _, v := range append(kept, values...) {
		ans.Records = append(ans.Records, &dns.TXT{Hdr: hdr, Txt: []string{strings.ReplaceAll(v, `\`, `\\`)}})
	}
	return ans, nil
}

// txtKind names what a TXT record is for, so an intended record replaces only its kind.
func txtKind(txt string) string {
	t := strings.TrimSpace(txt)
	switch {
	case IsSPFRecord(t):
		return "spf"
	case isDMARCRecord(t):
		return "dmarc"
	case isDKIMRecord(t):
		return "dkim"
	}
	if prefix, _, ok := strings.Cut(t, "="); ok && !strings.ContainsAny(prefix, " ;") {
		return "token:" + strings.ToLower(strings.Trim(prefix, `"'`))
	}
	return "other:" + t
}
