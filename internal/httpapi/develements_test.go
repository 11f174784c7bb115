package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDevElements(t *testing.T) {
	t.Parallel()

	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "api", http.StatusTeapot) })
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}

	t.Run("ServesTheDemoInDevelopment", func(t *testing.T) {
		t.Parallel()
		h := DevElements(next, true)
		page := get(h, "/dev/elements")
		require.Equal(t, http.StatusOK, page.Code)
		require.Contains(t, page.Body.String(), `src="/dev/elements/sendwerk-elements.js"`)
		require.Contains(t, page.Header().Get("Content-Security-Policy"), "connect-src 'self'")
		bundle := get(h, "/dev/elements/sendwerk-elements.js")
		require.Equal(t, http.StatusOK, bundle.Code)
		require.Equal(t, "text/javascript; charset=utf-8", bundle.Header().Get("Content-Type"))
		require.True(t, strings.Contains(bundle.Body.String(), "sendwerk-connector-settings"), "the embedded bundle defines the elements")
		require.Equal(t, http.StatusTeapot, get(h, "/v1/me").Code, "everything else goes to the API")
	})

	t.Run("OffInProduction", func(t *testing.T) {
		t.Parallel()
		h := DevElements(next, false)
		require.Equal(t, http.StatusTeapot, get(h, "/dev/elements").Code)
		require.Equal(t, http.StatusTeapot, get(h, "/dev/elements/sendwerk-elements.js").Code)
	})
}
