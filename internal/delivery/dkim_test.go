package delivery_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

const (
	dkimDomain   = "example.test"
	dkimSelector = "sw2025"
)

// dkimRecord is the TXT value publishing signer's public key.
func dkimRecord(t *testing.T, signer crypto.Signer) string {
	t.Helper()
	if pub, ok := signer.Public().(ed25519.PublicKey); ok {
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	require.NoError(t, err)
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// verifyDKIM verifies raw against a LookupTXT that serves the signer's key.
func verifyDKIM(t *testing.T, raw []byte, signer crypto.Signer) *dkim.Verification {
	t.Helper()
	record := dkimRecord(t, signer)
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != dkimSelector+"._domainkey."+dkimDomain {
				return nil, fmt.Errorf("no TXT record at %s", domain)
			}
			return []string{record}, nil
		},
	})
	require.NoError(t, err)
	require.Len(t, verifications, 1)
	return verifications[0]
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return key
}

func TestSignDKIM(t *testing.T) {
	t.Parallel()

	t.Run("RSAVerifies", func(t *testing.T) {
		t.Parallel()
		key := newRSAKey(t)
		signed, err := delivery.SignDKIM(testMessage("rsa"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key})
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(signed, []byte("DKIM-Signature: ")))
		require.Contains(t, string(signed), "a=rsa-sha256")
		require.Contains(t, string(signed), "c=relaxed/relaxed")
		v := verifyDKIM(t, signed, key)
		require.NoError(t, v.Err)
		require.Equal(t, dkimDomain, v.Domain)
		require.Equal(t, []string{"From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
			"From", "Subject", "Reply-To", "To", "Cc", "List-Unsubscribe", "List-Unsubscribe-Post"}, v.HeaderKeys)
	})

	t.Run("Ed25519Verifies", func(t *testing.T) {
		t.Parallel()
		_, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		signed, err := delivery.SignDKIM(testMessage("ed"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key})
		require.NoError(t, err)
		require.Contains(t, string(signed), "a=ed25519-sha256")
		require.NoError(t, verifyDKIM(t, signed, key).Err)
	})

	t.Run("AddedFromBreaksOversignedSignature", func(t *testing.T) {
		t.Parallel()
		key := newRSAKey(t)
		signed, err := delivery.SignDKIM(testMessage("oversign"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key})
		require.NoError(t, err)
		tampered := bytes.Replace(signed, []byte("\r\nFrom: "), []byte("\r\nFrom: Evil <evil@example.test>\r\nFrom: "), 1)
		require.Error(t, verifyDKIM(t, tampered, key).Err)
	})

	t.Run("ChangedBodyBreaksSignature", func(t *testing.T) {
		t.Parallel()
		key := newRSAKey(t)
		signed, err := delivery.SignDKIM(testMessage("body"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key})
		require.NoError(t, err)
		require.Error(t, verifyDKIM(t, bytes.Replace(signed, []byte("Hello"), []byte("Hallo"), 1), key).Err)
	})

	t.Run("CustomHeaders", func(t *testing.T) {
		t.Parallel()
		key := newRSAKey(t)
		signed, err := delivery.SignDKIM(testMessage("custom"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key, Headers: []string{"From", "Subject", "Date"}})
		require.NoError(t, err)
		v := verifyDKIM(t, signed, key)
		require.NoError(t, v.Err)
		require.Equal(t, []string{"From", "Subject", "From", "Subject", "Reply-To", "To", "Cc", "List-Unsubscribe", "List-Unsubscribe-Post"}, v.HeaderKeys)
	})

	t.Run("SurvivesDeliveryThroughPool", func(t *testing.T) {
		t.Parallel()
		key := newRSAKey(t)
		signed, err := delivery.SignDKIM(testMessage("through-pool"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: key})
		require.NoError(t, err)
		b := setupPool(t, smtptest.Opts{StartTLS: true, Auth: true}, delivery.SecurityStartTLS, delivery.AuthPlain, nil)
		_, err = b.pool.Send(context.Background(), testEnvelope(), signed)
		require.NoError(t, err)
		received := b.srv.WaitMessages(t, 1, time.Second)[0].Data
		require.NoError(t, verifyDKIM(t, received, key).Err)
	})

	t.Run("RequiresFromAndKey", func(t *testing.T) {
		t.Parallel()
		_, err := delivery.SignDKIM([]byte("Subject: x\r\n\r\nbody\r\n"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector, Signer: newRSAKey(t)})
		require.ErrorContains(t, err, "no From header")
		_, err = delivery.SignDKIM(testMessage("nokey"), delivery.DKIMOptions{Domain: dkimDomain, Selector: dkimSelector})
		require.ErrorContains(t, err, "signer are required")
	})
}
