package delivery

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DefaultDKIMHeaders are the fields signed when present: the ones a receiver shows or
// that change how the body is read. From is signed once more than it occurs
// (oversigning), so a second From added in transit breaks the signature.
func DefaultDKIMHeaders() []string {
	return []string{
		"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	}
}

// DKIMOptions selects the signing key and the header fields.
type DKIMOptions struct {
	Domain   string
	Selector string
	// Signer is an *rsa.PrivateKey (rsa-sha256) or an ed25519.PrivateKey (ed25519-sha256).
	Signer crypto.Signer
	// Headers to sign when present; nil means DefaultDKIMHeaders.
	Headers []string
}

// SignDKIM returns raw with a DKIM-Signature field prepended, relaxed/relaxed: relaxed
// canonicalization survives the whitespace and folding changes relays commonly make.
func SignDKIM(raw []byte, opts DKIMOptions) ([]byte, error) {
	if opts.Signer == nil || opts.Domain == "" || opts.Selector == "" {
		return nil, errors.New("error signing dkim: domain, selector and signer are required")
	}
	keys, err := dkimHeaderKeys(raw, opts.Headers)
	if err != nil {
		return nil, fmt.Errorf("error signing dkim: %w", err)
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 512)
	err = dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain:                 opts.Domain,
		Selector:               opts.Selector,
		Signer:                 opts.Signer,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, fmt.Errorf("error signing dkim: %w", err)
	}
	return out.Bytes(), nil
}

// dkimHeaderKeys lists the wanted fields that occur in the message, each as often as it
// occurs, plus one extra From for oversigning.
func dkimHeaderKeys(raw []byte, wanted []string) ([]string, error) {
	if wanted == nil {
		wanted = DefaultDKIMHeaders()
	}
	header, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil && len(header) == 0 {
		return nil, fmt.Errorf("error reading message header: %w", err)
	}
	if len(header["From"]) == 0 {
		return nil, errors.New("message has no From header")
	}
	var keys []string
	for _, name := range wanted {
		for range header[textproto.CanonicalMIMEHeaderKey(name)] {
			keys = append(keys, name)
		}
		if strings.EqualFold(name, "From") {
			keys = append(keys, name)
		}
	}
	return keys, nil
}
