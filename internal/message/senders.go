package message

import (
	"context"
	"crypto"
	"errors"

	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/store"
)

// DomainSenders adapts the sending-domain service to Senders.
func DomainSenders(d *sendingdomain.Service) Senders { return domainSenders{d} }

type domainSenders struct{ d *sendingdomain.Service }

func (a domainSenders) CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) error {
	_, err := a.d.CheckSender(ctx, tenantID, domain, requireSPF)
	var se *sendingdomain.SenderError
	if errors.As(err, &se) {
		return &SenderError{Domain: se.Domain, Message: se.Message}
	}
	return err
}

// DKIMSigner signs only for domains with send rights: a pending domain's key may not be
// published yet, and a signature that fails verification is worse than none.
func (a domainSenders) DKIMSigner(ctx context.Context, tenantID, domain string) (string, crypto.Signer, error) {
	d, err := a.d.GetByName(ctx, tenantID, domain)
	if sendingdomain.IsNotFound(err) {
		return "", nil, store.ErrNotFound
	}
	if err != nil {
		return "", nil, err
	}
	if d.Status != sendingdomain.StatusVerified && d.Status != sendingdomain.StatusAtRisk {
		return "", nil, store.ErrNotFound
	}
	return a.d.DKIMSigner(ctx, tenantID, d.Name)
}
