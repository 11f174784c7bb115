package httpapi

import (
	"embed"
	"net/http"
)

// devElementsFS holds the /dev/elements demo page: our index.html and demo.js, and the
// @sendwerk/elements bundle, which `make generate` builds from clients/elements and copies here.
//
//go:embed develements/index.html develements/demo.js develements/sendwerk-elements.js
var devElementsFS embed.FS

// devElementsPolicy lets the demo load only what the binary serves and call only this origin.
const devElementsPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// DevElements serves the web components' demo page at /dev/elements in front of next when
// enabled (development), so a frontend developer sees <sendwerk-connector-settings>,
// <sendwerk-domain-setup> and <sendwerk-message-log> against this server. Disabled, it is next.
func DevElements(next http.Handler, enabled bool) http.Handler {
	if !enabled {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle("GET /dev/elements", devElementsFile("develements/index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /dev/elements/demo.js", devElementsFile("develements/demo.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /dev/elements/sendwerk-elements.js", devElementsFile("develements/sendwerk-elements.js", "text/javascript; charset=utf-8"))
	mux.Handle("/", next)
	return mux
}

func devElementsFile(name, contentType string) http.Handler {
	b, err := devElementsFS.ReadFile(name)
	if err != nil {
		panic("httpapi: missing embedded " + name) // a build without `make generate` output
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", devElementsPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
