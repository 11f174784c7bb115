package sendingdomain

import (
	"context"
	"fmt"
	"strings"
)

// DevSPFRecord is what the development DNS publishes at the platform's SPF include when no
// SPF networks are configured: the development relay (the mail catcher) sends from loopback.
const DevSPFRecord = "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"

// platformSPFRecord is the platform's own record at its include: its networks, or loopback.
func (s *Service) platformSPFRecord() string {
	if len(s.cfg.SPFNetworks) == 0 {
		return DevSPFRecord
	}
	terms := []string{"v=spf1"}
	for _, n := range s.cfg.SPFNetworks {
		mech := "ip4:"
		if n.Addr().Is6() {
			mech = "ip6:"
		}
		terms = append(terms, mech+n.String())
	}
	return strings.Join(append(terms, "-all"), " ")
}

// ExpectedTXT returns the TXT values Sendwerk asks customers to publish at name — the
// ownership token, the SPF record, the DKIM key and the DMARC suggestion of any tenant's
// domain that name belongs to, and the platform's record at its SPF include — as a
// correctly configured zone would serve them. The
// development DNS answers from it, so a domain under its suffix verifies right after it is
// added. When several tenants added the same domain, the newest one's records win: a name
// can carry only one DKIM key for a selector.
func (s *Service) ExpectedTXT(ctx context.Context, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if s.cfg.SPFInclude != "" && name == strings.ToLower(s.cfg.SPFInclude) {
		return []string{s.platformSPFRecord()}, nil
	}
	rows, err := s.q.SendingDomainListByNames(ctx, parentNames(name))
	if err != nil {
		return nil, fmt.Errorf("error listing domains by name: %w", err)
	}
	domains, err := fromRows(rows)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range domains {
		if seen[d.Name] {
			continue // an older tenant's copy of the same domain
		}
		seen[d.Name] = true
		if err := s.loadKeys(ctx, s.q, d); err != nil {
			return nil, err
		}
		for _, r := range s.Records(d) {
			if r.FQDN == name {
				out = append(out, r.Value)
			}
		}
	}
	return out, nil
}

// parentNames lists name and every parent domain of it with at least two labels.
func parentNames(name string) []string {
	out := []string{name}
	for {
		_, rest, ok := strings.Cut(name, ".")
		if !ok || !strings.Contains(rest, ".") {
			return out
		}
		out = append(out, rest)
		name = rest
	}
}
