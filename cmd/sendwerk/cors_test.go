package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCORS: off by default; with SENDWERK_CORS_ORIGINS a console on a listed origin may
// call the API from the browser (preflight answered before authentication), others not.
func TestCORS(t *testing.T) {
	t.Parallel()
	request := func(t *testing.T, base, method, origin string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+"/v1/me", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", http.MethodGet)
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}

	t.Run("OffByDefault", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		resp := request(t, b.baseURL, http.MethodGet, "https://console.example.com")
		require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("AllowsListedOrigins", func(t *testing.T) {
		t.Parallel()
		b := setup(t, map[string]string{"SENDWERK_CORS_ORIGINS": "https://console.example.com, http://localhost:5173"})
		pre := request(t, b.baseURL, http.MethodOptions, "https://console.example.com")
		require.Equal(t, http.StatusNoContent, pre.StatusCode)
		require.Equal(t, "https://console.example.com", pre.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, pre.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		require.Empty(t, pre.Header.Get("Access-Control-Allow-Credentials"), "bearer tokens only, never cookies")

		get := request(t, b.baseURL, http.MethodGet, "http://localhost:5173")
		require.Equal(t, http.StatusUnauthorized, get.StatusCode, "CORS does not replace authentication")
		require.Equal(t, "http://localhost:5173", get.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, get.Header.Get("Access-Control-Expose-Headers"), "Retry-After")

		other := request(t, b.baseURL, http.MethodGet, "https://evil.example")
		require.Empty(t, other.Header.Get("Access-Control-Allow-Origin"))
	})
}
