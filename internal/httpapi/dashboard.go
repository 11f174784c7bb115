package httpapi

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// dashboardRealm names the Basic-auth prompt a browser shows for the job dashboard.
const dashboardRealm = "Sendwerk operator (password: the admin token)"

// registerJobDashboard mounts the job dashboard (River UI) at prefix behind the admin token.
func (s *Server) registerJobDashboard(e *echo.Echo, prefix string, h http.Handler) {
	if h == nil {
		return
	}
	handler := echo.WrapHandler(h)
	e.Any(prefix, handler, s.requireOperator)
	e.Any(prefix+"/*", handler, s.requireOperator)
}

// requireOperator admits the admin token as a bearer token, for scripts, or as the password
// of HTTP Basic auth with any user name, so an operator can open the dashboard in a browser,
// which cannot send a bearer header. Browsers resend Basic credentials on their own, so a
// state-changing request authenticated that way must come from a page of this origin.
func (s *Server) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		token, bearer := bearerToken(r)
		if !bearer {
			_, token, _ = r.BasicAuth()
		}
		if token == "" || s.authenticateAdmin(token) != nil {
			p := unauthorized("send the admin token as `Authorization: Bearer <token>`, or as the password of HTTP Basic auth")
			p.header.Add("Www-Authenticate", `Basic realm="`+dashboardRealm+`", charset="UTF-8"`)
			return p
		}
		if !bearer && !safeMethod(r.Method) && !sameOrigin(r) {
			return newProblem(http.StatusForbidden, TypeForbidden, "Forbidden",
				"a request that changes jobs must come from the dashboard's own page")
		}
		return next(c)
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin trusts the browser's own headers: Sec-Fetch-Site where sent, else Origin.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site request: browsers send Origin on those
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
