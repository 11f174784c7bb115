package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
	oapimw "github.com/oapi-codegen/echo-middleware"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// Security scheme names in openapi.yaml.
const (
	schemeAdmin  = "adminToken"
	schemeAPIKey = "apiKey"
)

type principalKey struct{}

// principalFrom returns the API key behind the request; handlers behind `apiKey` security
// always have one.
func principalFrom(ctx context.Context) *tenant.Principal {
	p, _ := ctx.Value(principalKey{}).(*tenant.Principal)
	return p
}

// tenantID is the tenant every query of an API-key request is scoped to.
func tenantID(ctx context.Context) string { return principalFrom(ctx).TenantID() }

// authenticate is the validator's AuthenticationFunc: it runs before parameters and body
// are checked, so an anonymous caller learns nothing about the operation's rules.
func (s *Server) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	c := oapimw.GetEchoContext(ctx)
	token, ok := bearerToken(c.Request())
	if !ok {
		return unauthorized("send the credential as `Authorization: Bearer <token>`")
	}
	switch in.SecuritySchemeName {
	case schemeAdmin:
		return s.authenticateAdmin(token)
	case schemeAPIKey:
		return s.authenticateKey(c, token, in.Scopes)
	}
	return unauthorized("unsupported security scheme")
}

func (s *Server) authenticateAdmin(token string) error {
	if strings.HasPrefix(token, tenant.KeyPrefix) {
		return unauthorized("this route needs the operator's admin token, not a tenant API key")
	}
	// Compare digests so the comparison takes the same time whatever the lengths.
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.adminToken))
	if s.adminToken == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return unauthorized("the admin token is not valid")
	}
	return nil
}

func (s *Server) authenticateKey(c echo.Context, token string, scopes []string) error {
	ctx := c.Request().Context()
	p, err := s.tenants.Authenticate(ctx, token, clientAddr(c))
	switch {
	case errors.Is(err, tenant.ErrAddressNotAllowed):
		return newProblem(http.StatusForbidden, TypeForbidden, "Forbidden", err.Error()+" ("+clientAddr(c).String()+")")
	case errors.Is(err, tenant.ErrKeyInvalid):
		if !strings.HasPrefix(token, tenant.KeyPrefix) {
			return unauthorized("this route needs a tenant API key (sw_…)")
		}
		return unauthorized(err.Error())
	case errors.Is(err, tenant.ErrKeyRevoked), errors.Is(err, tenant.ErrKeyExpired):
		return unauthorized(err.Error())
	case err != nil:
		slog.ErrorContext(ctx, "error authenticating api key", "error", err)
		if ue, ok := store.AsUnavailable(err); ok {
			return problemUnavailable(ue)
		}
		p := newProblem(http.StatusServiceUnavailable, TypeUnavailable, "Service unavailable",
			"could not check the credential right now; retry shortly")
		p.header = http.Header{"Retry-After": {strconv.Itoa(unavailableRetryAfter)}}
		return p
	}
	if prob := s.limiter.allow(p.Key.ID); prob != nil {
		return prob
	}
	for _, sc := range scopes {
		if !scopeSatisfied(p.Key, tenant.Scope(sc)) {
			return newProblem(http.StatusForbidden, TypeForbidden, "Forbidden",
				"this operation needs an API key with the `"+sc+"` scope")
		}
	}
	c.SetRequest(c.Request().WithContext(context.WithValue(ctx, principalKey{}, p)))
	return nil
}

// scopeSatisfied lets `manage` read what it may change.
func scopeSatisfied(k *tenant.APIKey, need tenant.Scope) bool {
	return k.HasScope(need) || (need == tenant.ScopeRead && k.HasScope(tenant.ScopeManage))
}

func unauthorized(detail string) *problem {
	p := newProblem(http.StatusUnauthorized, TypeUnauthorized, "Unauthorized", detail)
	p.header = http.Header{"Www-Authenticate": {`Bearer realm="sendwerk"`}}
	return p
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// clientAddr is the caller's address as Echo's IPExtractor sees it: the socket peer, or the
// X-Forwarded-For hop of a trusted proxy.
func clientAddr(c echo.Context) netip.Addr {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
