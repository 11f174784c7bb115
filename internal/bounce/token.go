package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/sendwerk/sendwerk/internal/ids"
)

// LocalPrefix starts every VERP local part: bounces+<token>@<bounce domain>.
const LocalPrefix = "bounces+"

// tokenMACBytes is the HMAC kept in a token: 80 bits, enough that nobody can forge one
// for a message id they guessed, short enough for the 64-byte local-part limit.
const tokenMACBytes = 10

var tokenEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// Tokens makes and checks VERP return paths. A token is the message id's 26 characters,
// a dot and an HMAC-SHA256 of the id under a key derived from the operator's secret key.
type Tokens struct {
	domain string
	key    []byte
}

// NewTokens returns Tokens for the bounce domain; secret is the operator's secret key, from
// which a key of the tokens' own is derived.
func NewTokens(domain string, secret []byte) *Tokens {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sendwerk bounce token v1"))
	return &Tokens{domain: strings.ToLower(domain), key: m.Sum(nil)}
}

// Domain is the bounce domain.
func (t *Tokens) Domain() string { return t.domain }

// ReturnPath is the envelope sender for a message: bounces+<token>@<domain>.
func (t *Tokens) ReturnPath(messageID string) string {
	rest := strings.TrimPrefix(messageID, ids.Message+"_")
	return LocalPrefix + rest + "." + t.mac(rest) + "@" + t.domain
}

// MessageID returns the message a return path names, if its token is genuine.
func (t *Tokens) MessageID(address string) (string, bool) {
	at := strings.LastIndexByte(address, '@')
	if at < 0 || !strings.EqualFold(address[at+1:], t.domain) {
		return "", false
	}
	local := strings.ToLower(address[:at])
	token, ok := strings.CutPrefix(local, LocalPrefix)
	if !ok {
		return "", false
	}
	rest, mac, ok := strings.Cut(token, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(t.mac(rest))) {
		return "", false
	}
	id := ids.Message + "_" + rest
	return id, ids.Valid(ids.Message, id)
}

func (t *Tokens) mac(rest string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(rest))
	return tokenEncoding.EncodeToString(m.Sum(nil)[:tokenMACBytes])
}
