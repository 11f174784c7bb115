// Package httpapi serves the REST API: it implements the generated strict server interface,
// authenticates, validates every request against openapi.yaml, and renders every error as
// RFC 9457 problem+json.
package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	oapimw "github.com/oapi-codegen/echo-middleware"
	"github.com/prometheus/client_golang/prometheus"

	sendwerk "github.com/sendwerk/sendwerk"
	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/bounce"
	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/platform"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

var _ api.StrictServerInterface = (*Server)(nil)

// Options configure the HTTP server.
type Options struct {
	Pool       *pgxpool.Pool
	Tenants    *tenant.Service
	Connectors *connector.Service
	Domains    *sendingdomain.Service
	Messages   *message.Service
	// Suppressions is the tenants' suppression lists; Bounces what the bounce listener
	// received (nil: no listener).
	Suppressions *suppression.Service
	Bounces      *bounce.Service
	Webhooks     *webhook.Service
	// Platform is what GET /v1/platform publishes.
	Platform platform.Facts
	// RelayCredentials are the SMTP relay host's logins; RelayHost says where it listens.
	RelayCredentials *connector.RelayCredentials
	RelayHost        RelayHost
	AdminToken       string
	// APIKeyRequestsPerSec bounds each API key's request rate in this process (0: unlimited).
	APIKeyRequestsPerSec int
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int64
	// TrustedProxies are the networks whose X-Forwarded-For is believed for the client address.
	TrustedProxies []netip.Prefix
	// JobDashboard, when set, is served at /riverui behind the admin token (see jobs.NewDashboard).
	JobDashboard http.Handler
	// Registry receives the HTTP metrics.
	Registry *prometheus.Registry
	// MetricsHandler serves GET /metrics on the API port; nil: no such route.
	MetricsHandler http.Handler
	Logger         *slog.Logger
	// CORSOrigins are the browser origins allowed to call the API; none: no CORS headers.
	CORSOrigins []string
}

// Server implements api.StrictServerInterface.
type Server struct {
	pool         *pgxpool.Pool
	tenants      *tenant.Service
	connectors   *connector.Service
	domains      *sendingdomain.Service
	messages     *message.Service
	suppressions *suppression.Service
	bounces      *bounce.Service
	webhooks     *webhook.Service
	platform     platform.Facts
	relayCreds   *connector.RelayCredentials
	relayHost    RelayHost
	adminToken   string
	limiter      *keyLimiter
}

// New returns the complete HTTP handler.
func New(opts Options) (http.Handler, error) {
	s := &Server{pool: opts.Pool, tenants: opts.Tenants, connectors: opts.Connectors, domains: opts.Domains, messages: opts.Messages, adminToken: opts.AdminToken,
		relayCreds: opts.RelayCredentials, relayHost: opts.RelayHost, suppressions: opts.Suppressions, bounces: opts.Bounces,
		webhooks: opts.Webhooks, platform: opts.Platform,
		limiter: newKeyLimiter(opts.APIKeyRequestsPerSec)}
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler
	e.IPExtractor = ipExtractor(opts.TrustedProxies)

	if len(opts.CORSOrigins) > 0 {
		e.Pre(cors(opts.CORSOrigins))
	}
	e.Use(requestID(), accessLog(opts.Logger), metrics(opts.Registry), echomw.Recover())
	e.Use(echomw.BodyLimitWithConfig(echomw.BodyLimitConfig{Limit: byteLimit(opts.MaxBodyBytes)}))
	e.Use(checkInput(bodyChecks(spec, append([]openapi3.SchemaValidationOption{openapi3.VisitAsRequest()}, schemaOpts...), hotBodyRoutes...)))
	e.Use(s.requestValidator(spec))

	api.RegisterHandlers(e, api.NewStrictHandler(s, nil))
	// /metrics on the API port only when main asks for it (config.MetricsOnAPI).
	if opts.MetricsHandler != nil {
		e.GET("/metrics", echo.WrapHandler(opts.MetricsHandler))
	}
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", sendwerk.OpenAPISpec)
	})
	registerDocs(e)
	s.registerJobDashboard(e, "/riverui", opts.JobDashboard)
	return e, nil
}

// requestValidator validates every /v1/ request against openapi.yaml with kin-openapi. A JSON
// body checkInput found its operation's bodyCheck to accept skips kin-openapi's body
// validation (credentials and parameters are still validated); any other body gets the full
// validation, whose problems name the field and rule.
func (s *Server) requestValidator(spec *openapi3.T) echo.MiddlewareFunc {
	opts := func(excludeBody bool) *oapimw.Options {
		return &oapimw.Options{
			Skipper:           func(c echo.Context) bool { return !strings.HasPrefix(c.Request().URL.Path, "/v1/") },
			ErrorHandler:      func(_ echo.Context, err *echo.HTTPError) error { return err },
			MultiErrorHandler: func(me openapi3.MultiError) *echo.HTTPError { return validationHTTPError(me) },
			Options: openapi3filter.Options{
				AuthenticationFunc:      s.authenticate,
				MultiError:              true,
				ExcludeRequestBody:      excludeBody,
				SchemaValidationOptions: schemaOpts,
			},
		}
	}
	full, noBody := oapimw.OapiRequestValidatorWithOptions(spec, opts(false)), oapimw.OapiRequestValidatorWithOptions(spec, opts(true))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		fullNext := full(next)
		// kin-openapi copies the body for the authentication function even when it does not
		// validate it; the checked body is hidden from it and handed back to the handler.
		noBodyNext := noBody(func(c echo.Context) error {
			c.Request().Body = c.Get(checkedBodyKey).(io.ReadCloser)
			return next(c)
		})
		return func(c echo.Context) error {
			if checked, _ := c.Get(bodyCheckedKey).(bool); !checked {
				return fullNext(c)
			}
			c.Set(checkedBodyKey, c.Request().Body)
			c.Request().Body = http.NoBody
			return noBodyNext(c)
		}
	}
}

// checkedBodyKey holds a checked request's body while kin-openapi validates the rest.
const checkedBodyKey = "sendwerk.checkedBody"

// schemaOpts are the schema validation options of every request validation. Problems use
// each error's reason, never kin-openapi's dump of the schema and value; left on, that dump
// is rendered for every oneOf alternative a valid request does not take (an address given as
// a list tries the string form first), which cost more than the rest of the validation.
var schemaOpts = []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}

func loadSpec() (*openapi3.T, error) {
	spec, err := openapi3.NewLoader().LoadFromData(sendwerk.OpenAPISpec)
	if err != nil {
		return nil, fmt.Errorf("error loading embedded openapi spec: %w", err)
	}
	spec.Servers = nil // the validator would otherwise match the Host header against them
	return spec, nil
}

// validationHTTPError picks what a caller must fix first: credentials, then input.
func validationHTTPError(me openapi3.MultiError) *echo.HTTPError {
	for _, e := range me {
		if sre, ok := e.(*openapi3filter.SecurityRequirementsError); ok {
			return &echo.HTTPError{Code: http.StatusUnauthorized, Internal: securityProblem(sre)}
		}
	}
	return &echo.HTTPError{Code: http.StatusBadRequest, Message: "invalid request", Internal: me}
}

// securityProblem returns the most specific refusal: a 403 (right key, wrong scope or
// address) over a 401 from another scheme the operation also accepts.
func securityProblem(sre *openapi3filter.SecurityRequirementsError) *problem {
	var best *problem
	for _, err := range sre.Errors {
		p, ok := err.(*problem)
		if !ok {
			continue
		}
		if best == nil || p.Status > best.Status {
			best = p
		}
	}
	if best == nil {
		return unauthorized("missing or invalid credential")
	}
	return best
}

func byteLimit(n int64) string {
	if n <= 0 {
		n = 20 << 20
	}
	return fmt.Sprintf("%dB", n)
}

func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		_, ipnet, err := net.ParseCIDR(p.String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(ipnet))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// GetHealth answers while the process serves.
func (s *Server) GetHealth(context.Context, api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	return api.GetHealth200JSONResponse{Status: "ok"}, nil
}

// GetReadiness answers 200 only when the database does.
func (s *Server) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		slog.WarnContext(ctx, "readiness check failed", "error", err)
		p := newProblem(http.StatusServiceUnavailable, TypeUnavailable, "Service unavailable", "the database is not reachable")
		return api.GetReadiness503ApplicationProblemPlusJSONResponse{
			UnavailableApplicationProblemPlusJSONResponse: api.UnavailableApplicationProblemPlusJSONResponse(stamp(ctx, p.Problem)),
		}, nil
	}
	return api.GetReadiness200JSONResponse{Status: "ok"}, nil
}
