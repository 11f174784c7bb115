package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/jobs"
)

// TestJobDashboard checks River UI at /riverui: the admin token opens it as a bearer token
// or as a Basic-auth password (what a browser can send), nothing else does, and it shows
// the jobs in the database — in headless Chromium too.
func TestJobDashboard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, nil)
	_, _, apiKey := b.newTenantKey(t, "Dashboard GmbH", "manage")

	inserter, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	require.NoError(t, err)
	inserted, err := inserter.Insert(ctx, jobs.APIKeyPurgeArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	get := func(t *testing.T, path string, auth func(*http.Request)) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, b.baseURL+path, nil)
		require.NoError(t, err)
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	bearerAuth := func(token string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	basicAuth := func(user, password string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, password) }
	}

	t.Run("RefusesWithoutAdminToken", func(t *testing.T) {
		for name, auth := range map[string]func(*http.Request){
			"none":         nil,
			"wrong basic":  basicAuth("admin", "not-the-token-0123456789"),
			"tenant key":   bearerAuth(apiKey),
			"tenant basic": basicAuth("admin", apiKey),
		} {
			resp := get(t, "/riverui/", auth)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
			require.Contains(t, resp.Header.Values("Www-Authenticate"), `Basic realm="Sendwerk operator (password: the admin token)", charset="UTF-8"`, name)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), name)
		}
		resp := get(t, "/riverui/api/jobs?state=scheduled", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the dashboard's API is behind the token too")
	})

	t.Run("OpensWithBearerOrBasic", func(t *testing.T) {
		for name, auth := range map[string]func(*http.Request){
			"bearer": bearerAuth(testAdminToken),
			"basic":  basicAuth("anyone", testAdminToken),
		} {
			page := get(t, "/riverui/", auth)
			require.Equal(t, http.StatusOK, page.StatusCode, name)
			require.Contains(t, page.Header.Get("Content-Type"), "text/html", name)

			resp := get(t, "/riverui/api/jobs?state=scheduled&limit=20", auth)
			require.Equal(t, http.StatusOK, resp.StatusCode, name)
			var list struct {
				Data []struct {
					ID   int64  `json:"id"`
					Kind string `json:"kind"`
				} `json:"data"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&list), name)
			require.Contains(t, list.Data, struct {
				ID   int64  `json:"id"`
				Kind string `json:"kind"`
			}{inserted.Job.ID, "api_key_purge"}, name)
		}
	})

	t.Run("RefusesCrossSiteChangesWithBasic", func(t *testing.T) {
		post := func(auth func(*http.Request), headers map[string]string) int {
			req, err := http.NewRequest(http.MethodPost, b.baseURL+"/riverui/api/jobs/cancel",
				strings.NewReader(`{"ids":["`+strconv.FormatInt(inserted.Job.ID, 10)+`"]}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			auth(req)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		basic := basicAuth("operator", testAdminToken)
		require.Equal(t, http.StatusForbidden, post(basic, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}))
		require.Equal(t, http.StatusForbidden, post(basic, map[string]string{"Origin": "https://evil.example"}))
		require.Equal(t, http.StatusOK, post(basic, map[string]string{"Origin": b.baseURL, "Sec-Fetch-Site": "same-origin"}))
	})

	t.Run("RendersInChromium", func(t *testing.T) {
		other, err := inserter.Insert(ctx, jobs.APIKeyPurgeArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(2 * time.Hour)})
		require.NoError(t, err)
		// A browser answers the Basic prompt once and then sends the credentials with every
		// request, the UI's API calls included. Headless Chromium has no prompt (and a URL
		// with user:password@ breaks the page's fetch calls), so a proxy on loopback plays the
		// browser's credential cache.
		target, err := url.Parse(b.baseURL)
		require.NoError(t, err)
		proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.SetBasicAuth("operator", testAdminToken)
		}}
		front := httptest.NewServer(proxy)
		t.Cleanup(front.Close)

		dom, console := chromium(t, "--dump-dom", front.URL+"/riverui/jobs?state=scheduled")
		require.Contains(t, dom, "api_key_purge", "the scheduled jobs are listed\n%s", console)
		require.Contains(t, dom, strconv.FormatInt(other.Job.ID, 10))
		shot := filepath.Join(artifactDir(t), "riverui.png")
		chromium(t, "--window-size=1400,900", "--hide-scrollbars", "--screenshot="+shot, front.URL+"/riverui/jobs?state=scheduled")
		t.Logf("screenshot of /riverui: %s", shot)
	})
}
