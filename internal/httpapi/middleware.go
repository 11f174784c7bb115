package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendwerk/sendwerk/internal/logging"
)

// requestID takes a caller's X-Request-Id when it is short and printable, else makes one,
// and puts it in the response header and the request context (for logs and problems).
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			ctx := logging.WithRequestID(c.Request().Context(), id)
			ctx = context.WithValue(ctx, requestInfoKey{}, requestInfo{id: id, path: c.Request().URL.Path})
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// accessLog writes one line per request. It logs the route template, not the raw path, and
// never headers: the Authorization header must not reach a log.
func accessLog(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // render now so the status below is the one sent
			}
			logger.InfoContext(c.Request().Context(), "http request",
				"method", c.Request().Method, "route", routeOf(c), "status", c.Response().Status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "client", c.RealIP(),
				"bytes_out", c.Response().Size)
			return nil
		}
	}
}

func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" && c.Response().Status != 404 && c.Response().Status != 405 {
		return p
	}
	return "unmatched"
}

// metrics counts requests and observes latency by route template, method and status, so the
// label set stays bounded whatever paths callers try.
func metrics(reg prometheus.Registerer) echo.MiddlewareFunc {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendwerk_http_requests_total",
		Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "method", "status"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sendwerk_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route", "method", "status"})
	reg.MustRegister(requests, latency)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			labels := []string{routeOf(c), c.Request().Method, strconv.Itoa(c.Response().Status)}
			requests.WithLabelValues(labels...).Inc()
			latency.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}
