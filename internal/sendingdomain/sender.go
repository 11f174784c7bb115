package sendingdomain

import (
	"context"
	"errors"
	"fmt"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Rules a sender can break, as SenderError.Rule.
const (
	RuleUnknown = "domain.unknown"
	RulePending = "domain.pending"
	RuleRevoked = "domain.revoked"
	RuleSPF     = "domain.spf_not_authorised"
)

// SenderError says why a domain may not be used as sender, in words for the customer.
type SenderError struct {
	Domain   string
	DomainID string
	Rule     string
	Message  string
}

func (e *SenderError) Error() string { return e.Message }

// IsSenderError reports whether err is a *SenderError.
func IsSenderError(err error) bool {
	var se *SenderError
	return errors.As(err, &se)
}

// CheckSender is the sender rule of the message pipeline: mail from domain (any spelling;
// the From address's domain) may be sent only when the tenant has this exact domain —
// a verified example.com does not cover mail.example.com — and it is verified or at_risk.
// requireSPF (platform connectors) also demands that the last conclusive SPF check passed,
// when the platform has SPF settings; a DNS error never counts against it.
func (s *Service) CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) (*Domain, error) {
	row, err := s.senderRow(ctx, tenantID, domain)
	if err != nil {
		return nil, err
	}
	return s.judgeSender(ctx, row, requireSPF)
}

// SenderAllowed is CheckSender's answer without the domain: nil, or the same refusal. A
// domain with send rights (the usual answer) is judged from the cached row as it is,
// without decoding its check results.
func (s *Service) SenderAllowed(ctx context.Context, tenantID, domain string, requireSPF bool) error {
	row, err := s.senderRow(ctx, tenantID, domain)
	if err != nil {
		return err
	}
	spf := ""
	if row.SpfStatus != nil {
		spf = *row.SpfStatus
	}
	if !s.refusesSender(row.Status, spf, requireSPF) {
		return nil
	}
	_, err = s.judgeSender(ctx, row, requireSPF)
	return err
}

// senderRow finds the tenant's domain of a sender through the cache; a name that is not a
// domain, or not one of the tenant's, is a *SenderError.
func (s *Service) senderRow(ctx context.Context, tenantID, domain string) (dbsqlc.SendingDomain, error) {
	name, err := mailaddr.Domain(domain)
	if err != nil {
		return dbsqlc.SendingDomain{}, &SenderError{Domain: domain, Rule: RuleUnknown, Message: fmt.Sprintf("%q is not a valid sender domain", domain)}
	}
	row, err := s.cachedRowByName(ctx, tenantID, name)
	if IsNotFound(err) {
		return row, &SenderError{Domain: name, Rule: RuleUnknown, Message: fmt.Sprintf(
			"domain %s is not a sender domain of this account: add it with POST /v1/domains, publish its records and check it (each subdomain is added on its own)", name)}
	}
	return row, err
}

// refusesSender is the rule itself: a pending or revoked domain may not send, nor one whose
// SPF does not pass when requireSPF applies.
func (s *Service) refusesSender(status, spfStatus string, requireSPF bool) bool {
	return status == StatusPending || status == StatusRevoked || (requireSPF && s.cfg.SPFChecked() && spfStatus != string(dnscheck.StatusPass))
}

// judgeSender returns the domain of row, or the refusal that names its cause.
func (s *Service) judgeSender(ctx context.Context, row dbsqlc.SendingDomain, requireSPF bool) (*Domain, error) {
	name := row.Domain
	d, err := fromRow(row)
	if err != nil {
		return nil, err
	}
	if d.Status == StatusRevoked || (requireSPF && s.cfg.SPFChecked() && d.SPFStatus != string(dnscheck.StatusPass)) {
		_ = s.loadKeys(ctx, s.q, d) // the refusal quotes its cause, which must not be a key still pending
	}
	records := fmt.Sprintf("GET /v1/domains/%s/records", d.ID)
	check := fmt.Sprintf("POST /v1/domains/%s/check", d.ID)
	switch d.Status {
	case StatusPending:
		return nil, &SenderError{Domain: name, DomainID: d.ID, Rule: RulePending, Message: fmt.Sprintf(
			"domain %s is pending verification: publish the records from %s and check again (%s)", name, records, check)}
	case StatusRevoked:
		return nil, &SenderError{Domain: name, DomainID: d.ID, Rule: RuleRevoked, Message: fmt.Sprintf(
			"domain %s has lost its send rights because its records failed for longer than the grace period%s: publish the records from %s again and check (%s)",
			name, causeOf(d), records, check)}
	}
	if requireSPF && s.cfg.SPFChecked() && d.SPFStatus != string(dnscheck.StatusPass) {
		return nil, &SenderError{Domain: name, DomainID: d.ID, Rule: RuleSPF, Message: fmt.Sprintf(
			"domain %s does not authorise the platform relay in its SPF record%s: publish the spf record from %s and check again (%s)",
			name, causeOf(d), records, check)}
	}
	return d, nil
}

// causeOf quotes the failing check of d, if any, for an error message.
func causeOf(d *Domain) string {
	v := judge(requiredResults(d.Results, d.DKIMKeys))
	if v.cause == nil {
		if r := d.Result(CheckSPF); r != nil && r.Status == dnscheck.StatusFail {
			return " (" + r.Code + ")"
		}
		return ""
	}
	return " (" + v.cause.Code + ")"
}
