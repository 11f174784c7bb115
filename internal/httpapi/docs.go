package httpapi

import (
	"embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// docsFS holds the /docs page: our index.html and init.js, and Redoc's standalone bundle,
// which `make generate` copies from clients/ts/node_modules (the version pinned in
// clients/ts/package.json), so the reference renders with no CDN or other network at run time.
//
//go:embed docs/index.html docs/init.js docs/redoc.standalone.js docs/redoc.standalone.js.LICENSE.txt
var docsFS embed.FS

// docsPolicy lets the page load only what the binary serves: Redoc injects its styles and
// runs its search index in a blob worker; everything else comes from this origin.
const docsPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// registerDocs serves the API reference at /docs, rendered in the browser from /openapi.yaml.
func registerDocs(e *echo.Echo) {
	page := docsFile("docs/index.html", "text/html; charset=utf-8")
	e.GET("/docs", page)
	e.GET("/docs/", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "../docs") })
	e.GET("/docs/init.js", docsFile("docs/init.js", "text/javascript; charset=utf-8"))
	e.GET("/docs/redoc.standalone.js", docsFile("docs/redoc.standalone.js", "text/javascript; charset=utf-8"))
	e.GET("/docs/redoc.standalone.js.LICENSE.txt", docsFile("docs/redoc.standalone.js.LICENSE.txt", "text/plain; charset=utf-8"))
}

func docsFile(name, contentType string) echo.HandlerFunc {
	b, err := docsFS.ReadFile(name)
	if err != nil {
		panic("httpapi: missing embedded " + name) // a build without `make generate` output
	}
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", docsPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache") // revalidate: a new binary may carry a new spec and viewer
		return c.Blob(http.StatusOK, contentType, b)
	}
}
