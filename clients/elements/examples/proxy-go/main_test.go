package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSendwerkProxy(t *testing.T) {
	t.Parallel()

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" cookie="+r.Header.Get("Cookie"))
	}))
	t.Cleanup(upstream.Close)
	target, err := url.Parse(upstream.URL)
	require.NoError(t, err)
	app := httptest.NewServer(sendwerkProxy(target, func(*http.Request) string { return "sw_test" }))
	t.Cleanup(app.Close)

	req, err := http.NewRequest(http.MethodGet, app.URL+"/api/sendwerk/v1/messages?status=failed", nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", "session=secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "GET /v1/messages?status=failed Bearer sw_test cookie=", string(body))
}
