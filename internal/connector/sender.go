package connector

import (
	"context"
	"fmt"

	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// SenderClaimedError refuses a default sender at a domain another tenant has verified and
// this one has not: an smtp connector may send from exactly its default sender without a
// verified domain (the tenant's own server authenticates it), but not as a domain someone
// else has proven is theirs.
type SenderClaimedError struct {
	Email  string
	Domain string
}

func (e *SenderClaimedError) Error() string {
	return fmt.Sprintf("%s is at %s, a domain another account has verified as its sender domain; add and verify %s in this account to send from it",
		e.Email, e.Domain, e.Domain)
}

// checkDefaultSender returns a *SenderClaimedError when email's domain is verified by
// another tenant and not by tenantID (submissions ask the sending-domain service's cache).
func checkDefaultSender(ctx context.Context, q *dbsqlc.Queries, tenantID, email string) error {
	a, err := mailaddr.Parse(email)
	if err != nil {
		return nil // the address rule reports it
	}
	claimed, err := q.SendingDomainVerifiedElsewhere(ctx, dbsqlc.SendingDomainVerifiedElsewhereParams{Domain: a.Domain, TenantID: tenantID})
	if err != nil {
		return fmt.Errorf("error checking the default sender's domain: %w", err)
	}
	if claimed != nil && *claimed {
		return &SenderClaimedError{Email: a.String(), Domain: a.Domain}
	}
	return nil
}

// checkSenderClaim is checkDefaultSender for a connector being created or changed, as a
// field error.
func checkSenderClaim(ctx context.Context, q *dbsqlc.Queries, tenantID string, c *Connector) error {
	if c.Kind != KindSMTP {
		return nil // a platform connector sends only from the tenant's verified domains
	}
	err := checkDefaultSender(ctx, q, tenantID, c.Sender.Email)
	if ce, ok := err.(*SenderClaimedError); ok {
		return validate.Field("default_sender.email", ce.Error())
	}
	return err
}
