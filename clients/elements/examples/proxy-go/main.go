// Command proxy-go is the Go proxy of clients/elements/README.md: the browser calls
// /api/sendwerk/v1/…, and this process adds the API key of the user's tenant and forwards
// to Sendwerk, so no key reaches the browser. Run: SENDWERK_URL=… SENDWERK_API_KEY=… go run .
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
)

func main() {
	sendwerk, err := url.Parse(os.Getenv("SENDWERK_URL"))
	if err != nil || sendwerk.Host == "" {
		log.Fatal("set SENDWERK_URL, e.g. http://localhost:8080")
	}
	key := os.Getenv("SENDWERK_API_KEY")
	// A real app looks up the logged-in user's tenant here; this one has one tenant.
	http.Handle("/api/sendwerk/v1/", sendwerkProxy(sendwerk, func(*http.Request) string { return key }))
	log.Fatal(http.ListenAndServe("localhost:3000", nil))
}

// sendwerkProxy forwards /api/sendwerk/v1/… to Sendwerk with the key of the user's tenant.
func sendwerkProxy(sendwerk *url.URL, apiKeyFor func(*http.Request) string) http.Handler {
	return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(sendwerk)
		r.Out.URL.Path, r.Out.URL.RawPath = strings.TrimPrefix(r.In.URL.Path, "/api/sendwerk"), ""
		r.Out.Header.Del("Cookie") // the app's session stays with the app
		r.Out.Header.Set("Authorization", "Bearer "+apiKeyFor(r.In))
	}}
}
