package httpapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/oapi-codegen/nullable"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Pagination defaults, as documented on the Limit parameter.
const (
	defaultLimit = 20
	maxLimit     = 100
)

// page reads limit and cursor. A cursor is the base64 of the last id on the previous page;
// ids sort by creation time, so a page is simply "ids after this one".
func page(limit *int, cursor *string) (int, string, error) {
	n := defaultLimit
	if limit != nil {
		n = min(max(*limit, 1), maxLimit)
	}
	if cursor == nil || *cursor == "" {
		return n, "", nil
	}
	after, err := decodeCursor(*cursor)
	if err != nil {
		return 0, "", problemValidation(http.StatusBadRequest, []validate.FieldError{{Field: "cursor", Message: err.Error()}})
	}
	return n, after, nil
}

// errBadCursor is the one answer to any cursor this API did not hand out.
var errBadCursor = errors.New("is not a cursor this API returned; use next_cursor of the previous page as it is")

// decodeCursor is the one reader of list cursors: base64url (unpadded) of a resource id,
// which is ASCII letters, digits and underscores. Anything else — bytes that are not text,
// which PostgreSQL would refuse with an error — is refused here.
func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 100 {
		return "", errBadCursor
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "", errBadCursor
		}
	}
	return string(b), nil
}

// nextCursor returns the cursor for the page after items when the page is full.
func nextCursor(lastID string, n, limit int) *string {
	if n < limit {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte(lastID))
	return &c
}

func nullTime(t *time.Time) nullable.Nullable[time.Time] {
	if t == nil {
		return nullable.NewNullNullable[time.Time]()
	}
	return nullable.NewNullableWithValue(*t)
}

func nullInt64(v *int64) nullable.Nullable[int64] {
	if v == nil {
		return nullable.NewNullNullable[int64]()
	}
	return nullable.NewNullableWithValue(*v)
}

func toAPITenant(t *tenant.Tenant) api.Tenant {
	return api.Tenant{
		Id: t.ID, Name: t.Name, MonthlyQuota: nullInt64(t.MonthlyQuota),
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
}

func toAPIKey(k *tenant.APIKey, now time.Time) api.ApiKey {
	scopes := make([]api.Scope, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = api.Scope(s)
	}
	cidrs := make([]string, len(k.AllowedCIDRs))
	for i, c := range k.AllowedCIDRs {
		cidrs[i] = c.String()
	}
	return api.ApiKey{
		Id: k.ID, TenantId: k.TenantID, Name: k.Name, Prefix: k.Prefix, Scopes: scopes,
		AllowedCidrs: cidrs, ExpiresAt: nullTime(k.ExpiresAt), LastUsedAt: nullTime(k.LastUsedAt),
		RevokedAt: nullTime(k.RevokedAt), CreatedAt: k.CreatedAt, Status: api.ApiKeyStatus(k.Status(now)),
	}
}

func toAPIKeyCreated(k *tenant.APIKey, secret string, now time.Time) api.ApiKeyCreated {
	a := toAPIKey(k, now)
	return api.ApiKeyCreated{
		Id: a.Id, TenantId: a.TenantId, Name: a.Name, Prefix: a.Prefix, Scopes: a.Scopes,
		AllowedCidrs: a.AllowedCidrs, ExpiresAt: a.ExpiresAt, LastUsedAt: a.LastUsedAt,
		RevokedAt: a.RevokedAt, CreatedAt: a.CreatedAt, Status: api.ApiKeyCreatedStatus(a.Status),
		Secret: secret,
	}
}

func keyParams(b *api.ApiKeyCreate) tenant.KeyParams {
	scopes := make([]string, len(b.Scopes))
	for i, s := range b.Scopes {
		scopes[i] = string(s)
	}
	p := tenant.KeyParams{Name: b.Name, Scopes: scopes, ExpiresAt: b.ExpiresAt}
	if b.AllowedCidrs != nil {
		p.AllowedCIDRs = *b.AllowedCidrs
	}
	return p
}
