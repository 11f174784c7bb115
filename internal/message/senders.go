package message

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/store"
)

// signerTTL is how long a parsed DKIM key is reused. Parsing an RSA key and decrypting it
// costs more than the lookup; a domain that loses its send rights stops being signed for
// within this time (new messages from it are refused at submission at once).
const signerTTL = time.Minute

// DomainSenders adapts the sending-domain service to Senders.
func DomainSenders(d *sendingdomain.Service) Senders {
	return &domainSenders{d: d, signers: map[signerKey]cachedSigner{}, now: time.Now}
}

type domainSenders struct {
	d   *sendingdomain.Service
	now func() time.Time

	mu      sync.Mutex
	signers map[signerKey]cachedSigner
}

type signerKey struct{ tenantID, domain string }

type cachedSigner struct {
	signers []delivery.DKIMOptions // empty: the domain has no send rights (sign nothing)
	expires time.Time
}

func (a *domainSenders) CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) error {
	err := a.d.SenderAllowed(ctx, tenantID, domain, requireSPF)
	var se *sendingdomain.SenderError
	if errors.As(err, &se) {
		return &SenderError{Domain: se.Domain, Message: se.Message}
	}
	return err
}

func (a *domainSenders) VerifiedElsewhere(ctx context.Context, tenantID, domain string) (bool, error) {
	return a.d.VerifiedElsewhere(ctx, tenantID, domain)
}

// DKIMSigners signs only for domains with send rights: a pending domain's key may not be
// published yet, and a signature that fails verification is worse than none. A domain
// signs with each of its active keys (RSA, and Ed25519 when enabled).
func (a *domainSenders) DKIMSigners(ctx context.Context, tenantID, domain string) ([]delivery.DKIMOptions, error) {
	key := signerKey{tenantID, domain}
	a.mu.Lock()
	c, ok := a.signers[key]
	a.mu.Unlock()
	if !ok || a.now().After(c.expires) {
		var err error
		if c, err = a.load(ctx, tenantID, domain); err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.signers[key] = c
		a.mu.Unlock()
	}
	if len(c.signers) == 0 {
		return nil, store.ErrNotFound
	}
	return c.signers, nil
}

func (a *domainSenders) load(ctx context.Context, tenantID, domain string) (cachedSigner, error) {
	c := cachedSigner{expires: a.now().Add(signerTTL)}
	d, err := a.d.GetByName(ctx, tenantID, domain)
	if sendingdomain.IsNotFound(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if !d.CanSend() {
		return c, nil
	}
	c.signers, err = a.d.DKIMSigners(ctx, tenantID, d.Name)
	if sendingdomain.IsNotFound(err) {
		return c, nil
	}
	return c, err
}
