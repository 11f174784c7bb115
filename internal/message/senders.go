package message

import (
	"context"
	"crypto"
	"errors"
	"sync"
	"time"

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
	selector string
	signer   crypto.Signer // nil: the domain has no send rights (sign nothing)
	expires  time.Time
}

func (a *domainSenders) CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) error {
	_, err := a.d.CheckSender(ctx, tenantID, domain, requireSPF)
	var se *sendingdomain.SenderError
	if errors.As(err, &se) {
		return &SenderError{Domain: se.Domain, Message: se.Message}
	}
	return err
}

// DKIMSigner signs only for domains with send rights: a pending domain's key may not be
// published yet, and a signature that fails verification is worse than none.
func (a *domainSenders) DKIMSigner(ctx context.Context, tenantID, domain string) (string, crypto.Signer, error) {
	key := signerKey{tenantID, domain}
	a.mu.Lock()
	c, ok := a.signers[key]
	a.mu.Unlock()
	if !ok || a.now().After(c.expires) {
		var err error
		if c, err = a.load(ctx, tenantID, domain); err != nil {
			return "", nil, err
		}
		a.mu.Lock()
		a.signers[key] = c
		a.mu.Unlock()
	}
	if c.signer == nil {
		return "", nil, store.ErrNotFound
	}
	return c.selector, c.signer, nil
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
	c.selector, c.signer, err = a.d.DKIMSigner(ctx, tenantID, d.Name)
	return c, err
}
