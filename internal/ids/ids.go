// Package ids makes Sendwerk's resource ids: a type prefix and 26 characters of lower-case
// Crockford base32 over a UUIDv7, so ids sort by creation time and cursors can be plain ids.
package ids

import (
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Prefixes of every resource type; one id style everywhere.
const (
	Tenant          = "ten"
	APIKey          = "key"
	Connector       = "con"
	Domain          = "dom"
	DomainCheck     = "chk"
	Message         = "msg"
	Event           = "evt"
	RelayCredential = "rel"
	Suppression     = "sup"
	BounceReport    = "bnc"
	Webhook         = "whk"
	WebhookDelivery = "whd"
	DKIMKey         = "dkk"
)

var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns a fresh id with the given prefix, e.g. "ten_01jd3v8m5q0c7s2k9x4r6t1w3y".
func New(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does; nothing can go on then.
		panic(fmt.Sprintf("error making uuidv7: %v", err))
	}
	return prefix + "_" + encoding.EncodeToString(u[:])
}

// Floor returns the smallest id of the given prefix made at or after t: ids made before t
// sort below it (retention deletes by id range).
func Floor(prefix string, t time.Time) string {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return prefix + "_" + encoding.EncodeToString(u[:])
}

// Valid reports whether id looks like an id of the given prefix; lookups use it to answer
// 404 without touching the database.
func Valid(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	_, err := encoding.DecodeString(rest)
	return err == nil
}
