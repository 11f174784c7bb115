// Package secret encrypts stored secrets (SMTP passwords, DKIM private keys) with AES-256-GCM.
// Each ciphertext is stored beside the id of the key that sealed it, so keys can be rotated:
// new secrets use the current key, old ones still open with a previous key until re-sealed.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrUnknownKey means a ciphertext was sealed with a key this process does not have.
var ErrUnknownKey = errors.New("secret was sealed with a key that is not configured")

// ErrCorrupt means a ciphertext failed authentication: altered, or opened with the wrong context.
var ErrCorrupt = errors.New("secret could not be decrypted")

// Box seals and opens secrets.
type Box struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewBox takes the current key and any previous keys, each base64 of 32 bytes.
func NewBox(current string, previous ...string) (*Box, error) {
	b := &Box{aeads: map[string]cipher.AEAD{}}
	for i, k := range append([]string{current}, previous...) {
		id, aead, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("error loading secret key %d: %w", i, err)
		}
		if i == 0 {
			b.current = id
		}
		b.aeads[id] = aead
	}
	return b, nil
}

func newAEAD(key string) (string, cipher.AEAD, error) {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		return "", nil, errors.New("key must be base64 of exactly 32 bytes")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return "", nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", nil, err
	}
	return KeyID(raw), aead, nil
}

// KeyID names a key without revealing it: the first 8 bytes of its SHA-256, in hex.
func KeyID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// Seal encrypts plaintext under the current key. context (e.g. "connector:con_…:password")
// is authenticated but not stored: a ciphertext copied to another row will not open.
func (b *Box) Seal(plaintext []byte, context string) (keyID string, ciphertext []byte) {
	aead := b.aeads[b.current]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return b.current, aead.Seal(nonce, nonce, plaintext, []byte(context))
}

// Open decrypts a ciphertext sealed by Seal with the same context.
func (b *Box) Open(keyID string, ciphertext []byte, context string) ([]byte, error) {
	aead, ok := b.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, keyID)
	}
	if len(ciphertext) < aead.NonceSize() {
		return nil, ErrCorrupt
	}
	nonce, body := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	out, err := aead.Open(nil, nonce, body, []byte(context))
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}

// CurrentKeyID is the id new secrets are sealed with.
func (b *Box) CurrentKeyID() string { return b.current }
