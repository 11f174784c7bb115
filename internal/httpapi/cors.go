package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
)

// cors lets browser consoles on the listed origins call the API (SENDWERK_CORS_ORIGINS).
// It is off unless origins are configured: the recommended set-up keeps API keys on a
// backend that proxies /v1, where no CORS is needed. Credentials (cookies) are never
// allowed: the API authenticates by bearer token only. It runs before routing, so a
// preflight OPTIONS is answered before validation and authentication.
func cors(origins []string) echo.MiddlewareFunc {
	return echomw.CORSWithConfig(echomw.CORSConfig{
		AllowOrigins: origins,
		AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete},
		AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", echo.HeaderXRequestID},
		ExposeHeaders: []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
			echo.HeaderLocation, echo.HeaderXRequestID},
		MaxAge: 600,
	})
}
