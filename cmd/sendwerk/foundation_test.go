package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/httpapi"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, _, manageKey := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	_, _, readKey := b.newTenantKey(t, "Beta", sendwerk.ScopeRead)

	requireProblem := func(t *testing.T, r rawResponse, status int, typ, detailPart string) {
		t.Helper()
		require.Equal(t, status, r.status, string(r.body))
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		require.Equal(t, typ, r.problem.Type)
		require.Equal(t, status, r.problem.Status)
		require.NotNil(t, r.problem.Detail)
		require.Contains(t, *r.problem.Detail, detailPart)
		require.NotEmpty(t, r.header.Get("X-Request-Id"))
	}

	t.Run("MissingHeader", func(t *testing.T) {
		r := b.do(t, "GET", "/v1/me", "", "", "")
		requireProblem(t, r, 401, httpapi.TypeUnauthorized, "Authorization: Bearer")
		require.Equal(t, `Bearer realm="sendwerk"`, r.header.Get("Www-Authenticate"))
	})
	t.Run("MalformedHeader", func(t *testing.T) {
		req, _ := http.NewRequest("GET", b.baseURL+"/v1/me", nil)
		req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode)
	})
	t.Run("UnknownKey", func(t *testing.T) {
		requireProblem(t, b.do(t, "GET", "/v1/me", "", "", ""), 401, httpapi.TypeUnauthorized, "Bearer")
		requireProblem(t, b.do(t, "GET", "/v1/me", "sw_notakeyatall", "", ""), 401, httpapi.TypeUnauthorized, "not valid")
	})
	t.Run("AdminTokenOnTenantRoute", func(t *testing.T) {
		requireProblem(t, b.do(t, "GET", "/v1/me", testAdminToken, "", ""), 401, httpapi.TypeUnauthorized, "tenant API key")
	})
	t.Run("APIKeyOnAdminRoute", func(t *testing.T) {
		requireProblem(t, b.do(t, "GET", "/v1/tenants", manageKey, "", ""), 401, httpapi.TypeUnauthorized, "admin token")
	})
	t.Run("WrongAdminToken", func(t *testing.T) {
		requireProblem(t, b.do(t, "GET", "/v1/tenants", "not-the-admin-token-at-all", "", ""), 401, httpapi.TypeUnauthorized, "admin token is not valid")
	})
	t.Run("WrongScope", func(t *testing.T) {
		r := b.do(t, "POST", "/v1/api-keys", readKey, "application/json", `{"name":"x","scopes":["read"]}`)
		requireProblem(t, r, 403, httpapi.TypeForbidden, "`manage` scope")
	})
	t.Run("ManageImpliesRead", func(t *testing.T) {
		me, err := b.client(t, manageKey).GetMeWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, 200, me.StatusCode(), string(me.Body))
		require.Equal(t, "Acme", me.JSON200.Tenant.Name)
	})
	t.Run("RevokedKey", func(t *testing.T) {
		c := b.client(t, manageKey)
		created, err := c.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "temp", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}})
		require.NoError(t, err)
		require.Equal(t, 201, created.StatusCode(), string(created.Body))
		ok, err := b.client(t, created.JSON201.Secret).GetMeWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, 200, ok.StatusCode())
		require.NotNil(t, ok.JSON200)

		rev, err := c.RevokeApiKeyWithResponse(ctx, created.JSON201.Id)
		require.NoError(t, err)
		require.Equal(t, 200, rev.StatusCode())
		require.Equal(t, sendwerk.ApiKeyStatusRevoked, rev.JSON200.Status)
		requireProblem(t, b.do(t, "GET", "/v1/me", created.JSON201.Secret, "", ""), 401, httpapi.TypeUnauthorized, "revoked")
	})
	t.Run("ExpiredKey", func(t *testing.T) {
		c := b.client(t, manageKey)
		created, err := c.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "short", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}, ExpiresAt: ptr(time.Now().Add(time.Hour))})
		require.NoError(t, err)
		require.Equal(t, 201, created.StatusCode(), string(created.Body))
		_, err = b.pool.Exec(ctx, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", created.JSON201.Id)
		require.NoError(t, err)
		requireProblem(t, b.do(t, "GET", "/v1/me", created.JSON201.Secret, "", ""), 401, httpapi.TypeUnauthorized, "expired")
	})
	t.Run("ExpiryInThePastRejected", func(t *testing.T) {
		r := b.do(t, "POST", "/v1/api-keys", manageKey, "application/json", `{"name":"x","scopes":["read"],"expires_at":"2001-01-01T00:00:00Z"}`)
		require.Equal(t, 422, r.status, string(r.body))
		require.Equal(t, "must be in the future", fieldsOf(r.problem)["expires_at"])
	})
	t.Run("CIDRAllowList", func(t *testing.T) {
		c := b.client(t, manageKey)
		elsewhere, err := c.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "office", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}, AllowedCidrs: &[]string{"10.0.0.0/8", "2001:db8::/32"}})
		require.NoError(t, err)
		require.Equal(t, 201, elsewhere.StatusCode(), string(elsewhere.Body))
		require.Equal(t, []string{"10.0.0.0/8", "2001:db8::/32"}, elsewhere.JSON201.AllowedCidrs)
		requireProblem(t, b.do(t, "GET", "/v1/me", elsewhere.JSON201.Secret, "", ""), 403, httpapi.TypeForbidden, "client address")

		// X-Forwarded-For is not believed from an untrusted peer.
		req, _ := http.NewRequest("GET", b.baseURL+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+elsewhere.JSON201.Secret)
		req.Header.Set("X-Forwarded-For", "10.1.2.3")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 403, resp.StatusCode)

		local, err := c.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "local", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}, AllowedCidrs: &[]string{"127.0.0.1"}})
		require.NoError(t, err)
		require.Equal(t, []string{"127.0.0.1/32"}, local.JSON201.AllowedCidrs)
		me, err := b.client(t, local.JSON201.Secret).GetMeWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, 200, me.StatusCode(), string(me.Body))
	})
	t.Run("LastUsedRecorded", func(t *testing.T) {
		list, err := b.client(t, manageKey).ListApiKeysWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, 200, list.StatusCode())
		var used bool
		for _, k := range list.JSON200.Items {
			if strings.HasPrefix(manageKey, k.Prefix) {
				used = k.LastUsedAt.IsSpecified() && !k.LastUsedAt.IsNull()
			}
		}
		require.True(t, used, "the manage key's last_used_at should be set")
	})
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, keyA, _ := b.newTenantKey(t, "A", sendwerk.ScopeManage)
	_, keyB, secretB := b.newTenantKey(t, "B", sendwerk.ScopeManage)
	cb := b.client(t, secretB)

	get, err := cb.GetApiKeyWithResponse(ctx, keyA)
	require.NoError(t, err)
	require.Equal(t, 404, get.StatusCode())
	require.Equal(t, httpapi.TypeNotFound, get.ApplicationproblemJSON404.Type)

	// The answer for another tenant's key is the answer for a key that never existed.
	never, err := cb.GetApiKeyWithResponse(ctx, "key_01jd3v9a2b3c4d5e6f7g8h9j0k")
	require.NoError(t, err)
	require.Equal(t, 404, never.StatusCode())
	pa, pn := get.ApplicationproblemJSON404, never.ApplicationproblemJSON404
	require.Equal(t, pn.Title, pa.Title)
	require.Equal(t, strings.ReplaceAll(*pn.Detail, "key_01jd3v9a2b3c4d5e6f7g8h9j0k", "ID"), strings.ReplaceAll(*pa.Detail, keyA, "ID"))

	rev, err := cb.RevokeApiKeyWithResponse(ctx, keyA)
	require.NoError(t, err)
	require.Equal(t, 404, rev.StatusCode())

	list, err := cb.ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 1)
	require.Equal(t, keyB, list.JSON200.Items[0].Id)

	// A's key still works: B's revoke touched nothing.
	var revoked *time.Time
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT revoked_at FROM api_keys WHERE id = $1", keyA).Scan(&revoked))
	require.Nil(t, revoked)
}

func TestProblems(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"SENDWERK_MAX_BODY_BYTES": "4096"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)

	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		typ                                    string
		fields                                 map[string]string
	}{
		{name: "UnknownRoute", method: "GET", path: "/v1/nope", token: key, status: 404, typ: httpapi.TypeNotFound},
		{name: "UnknownRouteOutsideAPI", method: "GET", path: "/nope", status: 404, typ: httpapi.TypeNotFound},
		{name: "WrongMethod", method: "PUT", path: "/v1/api-keys", token: key, ctype: "application/json", body: "{}", status: 405, typ: httpapi.TypeMethodNotAllowed},
		{name: "MalformedJSON", method: "POST", path: "/v1/api-keys", token: key, ctype: "application/json", body: `{"name":`, status: 400, typ: httpapi.TypeMalformedRequest},
		{name: "EmptyBody", method: "POST", path: "/v1/api-keys", token: key, ctype: "application/json", status: 400, typ: httpapi.TypeMalformedRequest},
		{name: "WrongContentType", method: "POST", path: "/v1/api-keys", token: key, ctype: "text/plain", body: "hello", status: 415, typ: httpapi.TypeUnsupportedMediaType},
		{name: "OversizedBody", method: "POST", path: "/v1/api-keys", token: key, ctype: "application/json", body: `{"name":"` + strings.Repeat("x", 5000) + `"}`, status: 413, typ: httpapi.TypePayloadTooLarge},
		{
			name: "FieldErrors", method: "POST", path: "/v1/api-keys", token: key, ctype: "application/json",
			body:   `{"scopes":["read","fly"],"colour":"red"}`,
			status: 422, typ: httpapi.TypeValidation,
			fields: map[string]string{"name": "is required", "scopes[1]": "must be one of: messages:send, read, manage", "colour": "is not a known field"},
		},
		{
			name: "BadCIDR", method: "POST", path: "/v1/api-keys", token: key, ctype: "application/json",
			body:   `{"name":"x","scopes":["read"],"allowed_cidrs":["10.0.0.0/33"]}`,
			status: 422, typ: httpapi.TypeValidation,
			fields: map[string]string{"allowed_cidrs[0]": "must be an IPv4 or IPv6 network like 203.0.113.0/24 or an address"},
		},
		{
			name: "BadQueryParameter", method: "GET", path: "/v1/api-keys?limit=abc", token: key,
			status: 400, typ: httpapi.TypeValidation, fields: map[string]string{"limit": ""},
		},
		{
			name: "LimitOutOfRange", method: "GET", path: "/v1/tenants?limit=1000", token: testAdminToken,
			status: 400, typ: httpapi.TypeValidation, fields: map[string]string{"limit": ""},
		},
		{name: "BadCursor", method: "GET", path: "/v1/tenants?cursor=!!", token: testAdminToken, status: 400, typ: httpapi.TypeValidation},
		{
			name: "EmptyPatch", method: "PATCH", path: "/v1/tenants/ten_01jd3v8m5q0c7s2k9x4r6t1w3y", token: testAdminToken, ctype: "application/json", body: `{}`,
			status: 422, typ: httpapi.TypeValidation,
		},
		{name: "MissingTenant", method: "GET", path: "/v1/tenants/ten_01jd3v8m5q0c7s2k9x4r6t1w3y", token: testAdminToken, status: 404, typ: httpapi.TypeNotFound},
		{name: "MalformedID", method: "GET", path: "/v1/tenants/x'%3B--", token: testAdminToken, status: 404, typ: httpapi.TypeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(t, tc.method, tc.path, tc.token, tc.ctype, tc.body)
			require.Equal(t, tc.status, r.status, string(r.body))
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), string(r.body))
			require.Equal(t, tc.typ, r.problem.Type, string(r.body))
			require.Equal(t, tc.status, r.problem.Status)
			require.NotEmpty(t, r.problem.Title)
			require.NotNil(t, r.problem.Detail)
			got := fieldsOf(r.problem)
			for f, msg := range tc.fields {
				require.Contains(t, got, f, string(r.body))
				if msg != "" {
					require.Equal(t, msg, got[f])
				}
			}
		})
	}
	require.NotContains(t, b.logs.String(), "panic")
}

func TestTenants(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()

	var created []string
	for _, name := range []string{"one", "two", "three", "four", "five"} {
		r, err := b.admin.CreateTenantWithResponse(ctx, sendwerk.TenantCreate{Name: name, MonthlyQuota: nullable.NewNullableWithValue[int64](1000)})
		require.NoError(t, err)
		require.Equal(t, 201, r.StatusCode(), string(r.Body))
		require.Equal(t, int64(1000), r.JSON201.MonthlyQuota.MustGet())
		created = append(created, r.JSON201.Id)
	}

	t.Run("PagesInCreationOrder", func(t *testing.T) {
		var seen []string
		var cursor *string
		pages := 0
		for {
			limit := 2
			r, err := b.admin.ListTenantsWithResponse(ctx, &sendwerk.ListTenantsParams{Limit: &limit, Cursor: cursor})
			require.NoError(t, err)
			require.Equal(t, 200, r.StatusCode(), string(r.Body))
			pages++
			for _, it := range r.JSON200.Items {
				seen = append(seen, it.Id)
			}
			if r.JSON200.NextCursor == nil {
				break
			}
			cursor = r.JSON200.NextCursor
		}
		require.Equal(t, created, seen)
		require.Equal(t, 3, pages)
	})
	t.Run("PatchRemovesQuotaWithNull", func(t *testing.T) {
		r := b.do(t, "PATCH", "/v1/tenants/"+created[0], testAdminToken, "application/json", `{"monthly_quota":null}`)
		require.Equal(t, 200, r.status, string(r.body))
		require.Contains(t, string(r.body), `"monthly_quota":null`)
		require.Contains(t, string(r.body), `"name":"one"`)
	})
	t.Run("PatchRenames", func(t *testing.T) {
		name := "uno"
		r, err := b.admin.UpdateTenantWithResponse(ctx, created[0], sendwerk.TenantUpdate{Name: &name})
		require.NoError(t, err)
		require.Equal(t, 200, r.StatusCode(), string(r.Body))
		require.Equal(t, "uno", r.JSON200.Name)
		require.True(t, r.JSON200.MonthlyQuota.IsNull(), "the quota removed above stays removed")
	})
	t.Run("DeleteCascadesToKeys", func(t *testing.T) {
		k, err := b.admin.CreateTenantApiKeyWithResponse(ctx, created[1], sendwerk.ApiKeyCreate{Name: "k", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}})
		require.NoError(t, err)
		require.Equal(t, 201, k.StatusCode())
		d, err := b.admin.DeleteTenantWithResponse(ctx, created[1])
		require.NoError(t, err)
		require.Equal(t, 204, d.StatusCode())
		require.Equal(t, 401, b.do(t, "GET", "/v1/me", k.JSON201.Secret, "", "").status)
		again, err := b.admin.DeleteTenantWithResponse(ctx, created[1])
		require.NoError(t, err)
		require.Equal(t, 404, again.StatusCode())
	})
	t.Run("AdminRevokesTenantKey", func(t *testing.T) {
		k, err := b.admin.CreateTenantApiKeyWithResponse(ctx, created[2], sendwerk.ApiKeyCreate{Name: "k", Scopes: []sendwerk.Scope{sendwerk.ScopeRead}})
		require.NoError(t, err)
		list, err := b.admin.ListTenantApiKeysWithResponse(ctx, created[2], nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1)
		rev, err := b.admin.RevokeTenantApiKeyWithResponse(ctx, created[2], k.JSON201.Id)
		require.NoError(t, err)
		require.Equal(t, 200, rev.StatusCode())
		// Revoked under another tenant's path: not found.
		other, err := b.admin.RevokeTenantApiKeyWithResponse(ctx, created[3], k.JSON201.Id)
		require.NoError(t, err)
		require.Equal(t, 404, other.StatusCode())
	})
}

func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, keyID, secret := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	_ = b.do(t, "GET", "/v1/me", secret, "", "")

	var row string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT t::text FROM api_keys t WHERE id = $1", keyID).Scan(&row))
	require.NotContains(t, row, secret)
	require.NotContains(t, row, strings.TrimPrefix(secret, "sw_"))

	list, err := b.client(t, secret).ListApiKeysWithResponse(ctx, nil)
	require.NoError(t, err)
	require.NotContains(t, string(list.Body), secret)
	require.NotContains(t, string(list.Body), `"secret"`)

	logs := b.logs.String()
	require.Contains(t, logs, `"route":"/v1/me"`, "requests are logged")
	require.Contains(t, logs, `"request_id"`)
	require.NotContains(t, logs, secret)
	require.NotContains(t, logs, testAdminToken)
}

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()

	h, err := b.admin.GetHealthWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, "ok", h.JSON200.Status)
	r, err := b.admin.GetReadinessWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, 200, r.StatusCode())

	spec := b.do(t, "GET", "/openapi.yaml", "", "", "")
	require.Equal(t, 200, spec.status)
	require.True(t, strings.HasPrefix(string(spec.body), "openapi: 3.0.3"))

	_ = b.do(t, "GET", "/v1/tenants", testAdminToken, "", "")
	_ = b.do(t, "GET", "/v1/nope/"+strings.Repeat("x", 10), testAdminToken, "", "")
	m := b.do(t, "GET", "/metrics", "", "", "")
	require.Equal(t, 200, m.status)
	body := string(m.body)
	require.Contains(t, body, `sendwerk_http_requests_total{method="GET",route="/v1/tenants",status="200"} 1`)
	require.Contains(t, body, `sendwerk_http_request_duration_seconds_bucket{method="GET",route="/v1/tenants",status="200"`)
	require.Contains(t, body, `route="unmatched",status="404"`)
	require.NotContains(t, body, "/v1/nope", "unknown paths must not become label values")
}

func ptr[T any](v T) *T { return &v }

func TestAPIKeyRequestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"SENDWERK_API_KEY_RATE_LIMIT": "2"})
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeRead)
	_, _, other := b.newTenantKey(t, "Other", sendwerk.ScopeRead)
	statuses := map[int]int{}
	var limited rawResponse
	for range 8 {
		r := b.do(t, "GET", "/v1/me", key, "", "")
		statuses[r.status]++
		if r.status == 429 {
			limited = r
		}
	}
	require.GreaterOrEqual(t, statuses[200], 4, "a burst of twice the rate passes")
	require.GreaterOrEqual(t, statuses[429], 1, "then the key is limited: %v", statuses)
	require.Equal(t, httpapi.TypeRateLimited, limited.problem.Type)
	require.NotEmpty(t, limited.header.Get("Retry-After"))
	require.Equal(t, 200, b.do(t, "GET", "/v1/me", other, "", "").status, "other keys are not affected")
}
