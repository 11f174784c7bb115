package delivery

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// OversignedHeaders are listed in h= once more than they occur (RFC 6376 8.15), so a
// receiver rejects the signature when one is added after signing: the fields a reader
// trusts (From, Subject, who it went to and where replies go) and the one-click
// unsubscribe pair, which RFC 8058 3 wants covered by the signature.
func OversignedHeaders() []string {
	return []string{"From", "Subject", "Reply-To", "To", "Cc", "List-Unsubscribe", "List-Unsubscribe-Post"}
}

// unsignedHeader reports fields left out of h=: trace and authentication fields that
// relays and receivers add, remove or rewrite (RFC 6376 5.4.1), so signing them would
// only break signatures, and Bcc, which must not reach recipients.
func unsignedHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "return-path", "received", "received-spf", "authentication-results", "dkim-signature",
		"delivered-to", "x-original-to", "bcc":
		return true
	}
	for _, prefix := range []string{"arc-", "x-spam-", "x-virus-", "x-ms-exchange-", "x-google-", "x-received", "x-forwarded-"} {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// DKIMOptions selects the signing key and the header fields.
type DKIMOptions struct {
	Domain   string
	Selector string
	// Signer is an *rsa.PrivateKey (rsa-sha256) or an ed25519.PrivateKey (ed25519-sha256).
	Signer crypto.Signer
	// Headers restricts the fields signed when present; nil signs every field of the
	// message except trace fields (see unsignedHeader). OversignedHeaders are always
	// over-signed.
	Headers []string
}

// SignDKIM returns raw with one DKIM-Signature field per option prepended (an RSA and an
// Ed25519 key sign side by side, RFC 8463 6; receivers that know only RSA ignore the
// other), relaxed/relaxed: relaxed canonicalization survives the whitespace and folding
// changes relays commonly make. Each signature covers the same fields.
func SignDKIM(raw []byte, opts ...DKIMOptions) ([]byte, error) {
	if len(opts) == 0 {
		return nil, errors.New("error signing dkim: no key")
	}
	sigs := make([]string, 0, len(opts))
	for _, o := range opts {
		sig, err := signature(raw, o)
		if err != nil {
			return nil, fmt.Errorf("error signing dkim: %w", err)
		}
		sigs = append(sigs, sig)
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 600*len(sigs))
	for _, s := range sigs {
		out.WriteString(s)
	}
	out.Write(raw)
	return out.Bytes(), nil
}

// signature computes one DKIM-Signature field (with its CRLF) over raw.
func signature(raw []byte, opts DKIMOptions) (string, error) {
	if opts.Signer == nil || opts.Domain == "" || opts.Selector == "" {
		return "", errors.New("domain, selector and signer are required")
	}
	keys, err := dkimHeaderKeys(raw, opts.Headers)
	if err != nil {
		return "", err
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 opts.Domain,
		Selector:               opts.Selector,
		Signer:                 opts.Signer,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", err
	}
	if _, err := s.Write(raw); err != nil {
		_ = s.Close()
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	return s.Signature(), nil
}

// dkimHeaderKeys lists the fields to sign: each field of the message (or of wanted, when
// given) as often as it occurs, in the order of first appearance, plus one more of each
// OversignedHeaders name.
func dkimHeaderKeys(raw []byte, wanted []string) ([]string, error) {
	names, err := headerNames(raw)
	if err != nil {
		return nil, fmt.Errorf("error reading message header: %w", err)
	}
	count := map[string]int{}
	var order []string
	for _, n := range names {
		key := strings.ToLower(n)
		if count[key] == 0 {
			order = append(order, n)
		}
		count[key]++
	}
	if count["from"] == 0 {
		return nil, errors.New("message has no From header")
	}
	keep := func(n string) bool {
		if wanted == nil {
			return !unsignedHeader(n)
		}
		return slices.ContainsFunc(wanted, func(w string) bool { return strings.EqualFold(w, n) })
	}
	var keys []string
	for _, n := range order {
		if keep(n) {
			for range count[strings.ToLower(n)] {
				keys = append(keys, n)
			}
		}
	}
	return append(keys, OversignedHeaders()...), nil
}

// headerNames returns the field names of the message header in order (continuation
// lines belong to the field before them).
func headerNames(raw []byte) ([]string, error) {
	r := bufio.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		line, err := r.ReadSlice('\n')
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
			return names, nil
		}
		if trimmed[0] != ' ' && trimmed[0] != '\t' {
			name, _, ok := bytes.Cut(trimmed, []byte(":"))
			if !ok {
				return nil, fmt.Errorf("line %q is not a header field", truncate(string(trimmed), 40))
			}
			names = append(names, strings.TrimSpace(string(name)))
		}
		if err == io.EOF {
			return names, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		for errors.Is(err, bufio.ErrBufferFull) { // a line longer than the buffer: skip the rest
			_, err = r.ReadSlice('\n')
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
