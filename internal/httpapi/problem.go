package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// ProblemTypePrefix starts every problem type; clients branch on the full string.
const ProblemTypePrefix = "urn:sendwerk:problem:"

// Problem types.
const (
	TypeValidation           = ProblemTypePrefix + "validation"
	TypeMalformedRequest     = ProblemTypePrefix + "malformed-request"
	TypeUnauthorized         = ProblemTypePrefix + "unauthorized"
	TypeForbidden            = ProblemTypePrefix + "forbidden"
	TypeNotFound             = ProblemTypePrefix + "not-found"
	TypeMethodNotAllowed     = ProblemTypePrefix + "method-not-allowed"
	TypeConflict             = ProblemTypePrefix + "conflict"
	TypePayloadTooLarge      = ProblemTypePrefix + "payload-too-large"
	TypeUnsupportedMediaType = ProblemTypePrefix + "unsupported-media-type"
	TypeRateLimited          = ProblemTypePrefix + "rate-limited"
	TypeUnavailable          = ProblemTypePrefix + "unavailable"
	TypeInternal             = ProblemTypePrefix + "internal"
)

// problem is an RFC 9457 document on its way out, as an error so any layer can return one.
type problem struct {
	api.Problem
	header http.Header
}

func (p *problem) Error() string {
	return fmt.Sprintf("%d %s: %s", p.Status, p.Title, detailOf(p.Problem))
}

func detailOf(p api.Problem) string {
	if p.Detail == nil {
		return ""
	}
	return *p.Detail
}

func newProblem(status int, typ, title, detail string) *problem {
	p := &problem{Problem: api.Problem{Type: typ, Title: title, Status: status}}
	if detail != "" {
		p.Detail = &detail
	}
	return p
}

// problemNotFound is the one answer for a missing resource and for another tenant's: the
// two must be indistinguishable.
func problemNotFound(ctx context.Context, kind, id string) api.Problem {
	return stamp(ctx, newProblem(http.StatusNotFound, TypeNotFound, "Not found", fmt.Sprintf("no %s with id %q", kind, id)).Problem)
}

// stamp adds the request path and id to a problem a handler returns as a typed response.
func stamp(ctx context.Context, p api.Problem) api.Problem {
	if ri, ok := ctx.Value(requestInfoKey{}).(requestInfo); ok {
		p.Instance, p.RequestId = &ri.path, &ri.id
	}
	return p
}

type requestInfoKey struct{}

type requestInfo struct{ id, path string }

func problemValidation(status int, fields []validate.FieldError) *problem {
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
	detail := make([]string, 0, len(fields))
	errs := make([]api.FieldError, 0, len(fields))
	for _, f := range fields {
		detail = append(detail, f.Field+": "+f.Message)
		errs = append(errs, api.FieldError{Field: f.Field, Message: f.Message})
	}
	p := newProblem(status, TypeValidation, "Validation failed", strings.Join(detail, "; "))
	p.Errors = &errs
	return p
}

// problemFromError maps anything a handler or middleware returned to a problem. Unknown
// errors become a 500 whose text is logged, never sent.
func problemFromError(ctx context.Context, err error) *problem {
	var p *problem
	var v *validate.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
		return p
	case refusalProblem(err) != nil:
		return refusalProblem(err)
	case errors.As(err, &v):
		return problemValidation(http.StatusUnprocessableEntity, v.Fields)
	case errors.Is(err, store.ErrNotFound):
		return newProblem(http.StatusNotFound, TypeNotFound, "Not found", "no such resource")
	case errors.As(err, &he):
		if he.Internal != nil {
			if ip := problemFromKin(he.Internal); ip != nil {
				return ip
			}
		}
		return problemFromHTTPError(he)
	}
	if ue, ok := store.AsUnavailable(err); ok {
		slog.WarnContext(ctx, "database unavailable", "error", err, "ambiguous", ue.Ambiguous)
		return problemUnavailable(ue)
	}
	slog.ErrorContext(ctx, "internal error", "error", err)
	return newProblem(http.StatusInternalServerError, TypeInternal, "Internal error",
		"something went wrong on our side; the request id identifies it in the server's logs")
}

// unavailableRetryAfter is the Retry-After of a 503 for an unreachable database, in
// seconds: a restart of PostgreSQL takes a few.
const unavailableRetryAfter = 5

// problemUnavailable answers a request the database could not serve. A lost COMMIT is
// ambiguous, and the detail says so.
func problemUnavailable(ue *store.UnavailableError) *problem {
	detail := "the database is not reachable right now; nothing was changed. Retry after the Retry-After seconds (a submission with the same Idempotency-Key)"
	if ue.Ambiguous {
		detail = "the database connection was lost while committing, so the request may or may not have taken effect. " +
			"Retrying with the same Idempotency-Key is safe: it answers with the first outcome, or performs the request once"
	}
	p := newProblem(http.StatusServiceUnavailable, TypeUnavailable, "Service unavailable", detail)
	p.header = http.Header{"Retry-After": {strconv.Itoa(unavailableRetryAfter)}}
	return p
}

func problemFromHTTPError(he *echo.HTTPError) *problem {
	switch he.Code {
	case http.StatusNotFound:
		return newProblem(he.Code, TypeNotFound, "Not found", "no such route; see /openapi.yaml or /docs for the API")
	case http.StatusMethodNotAllowed:
		return newProblem(he.Code, TypeMethodNotAllowed, "Method not allowed", "this route does not support that method")
	case http.StatusRequestEntityTooLarge:
		return newProblem(he.Code, TypePayloadTooLarge, "Payload too large", "the request body exceeds the server's limit")
	case http.StatusUnsupportedMediaType:
		return newProblem(he.Code, TypeUnsupportedMediaType, "Unsupported media type", "send application/json")
	case http.StatusUnauthorized:
		return newProblem(he.Code, TypeUnauthorized, "Unauthorized", fmt.Sprint(he.Message))
	case http.StatusServiceUnavailable:
		return newProblem(he.Code, TypeUnavailable, "Service unavailable", fmt.Sprint(he.Message))
	}
	if he.Code >= 400 && he.Code < 500 {
		return newProblem(he.Code, TypeMalformedRequest, "Bad request", fmt.Sprint(he.Message))
	}
	return newProblem(http.StatusInternalServerError, TypeInternal, "Internal error",
		"something went wrong on our side; the request id identifies it in the server's logs")
}

// problemFromKin turns kin-openapi's validation errors into field errors: schema violations
// in the body are 422, bad parameters and unparseable bodies 400.
func problemFromKin(err error) *problem {
	var fields []validate.FieldError
	status := http.StatusUnprocessableEntity
	var reqErrs []*openapi3filter.RequestError
	var me openapi3.MultiError
	if errors.As(err, &me) {
		for _, e := range me {
			var re *openapi3filter.RequestError
			if errors.As(e, &re) {
				reqErrs = append(reqErrs, re)
			}
		}
	} else {
		var re *openapi3filter.RequestError
		if errors.As(err, &re) {
			reqErrs = append(reqErrs, re)
		}
	}
	if len(reqErrs) == 0 {
		return nil
	}
	for _, re := range reqErrs {
		if p := bodyProblem(re); p != nil {
			return p
		}
		if re.Parameter != nil {
			status = http.StatusBadRequest
			fields = append(fields, validate.FieldError{Field: re.Parameter.Name, Message: paramMessage(re)})
			continue
		}
		fields = append(fields, schemaFields(re.Err)...)
	}
	if len(fields) == 0 {
		return nil
	}
	return problemValidation(status, fields)
}

// bodyProblem reports bodies that are not JSON at all, or not the JSON the operation takes.
func bodyProblem(re *openapi3filter.RequestError) *problem {
	if re.RequestBody == nil {
		return nil
	}
	var pe *openapi3filter.ParseError
	if errors.As(re.Err, &pe) {
		return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request",
			"the request body is not valid JSON: "+firstLine(pe.Error()))
	}
	if strings.Contains(re.Reason, "value is required but missing") || errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request", "a JSON request body is required")
	}
	if strings.HasPrefix(re.Reason, "header Content-Type has unexpected value") || strings.Contains(re.Error(), "unsupported content type") {
		return newProblem(http.StatusUnsupportedMediaType, TypeUnsupportedMediaType, "Unsupported media type",
			"send the body as application/json")
	}
	return nil
}

func paramMessage(re *openapi3filter.RequestError) string {
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		return schemaMessage(se)
	}
	if re.Err != nil {
		return firstLine(re.Err.Error())
	}
	return re.Reason
}

func schemaFields(err error) []validate.FieldError {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []validate.FieldError
		for _, e := range me {
			out = append(out, schemaFields(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		ptr := se.JSONPointer()
		if m := unsupportedProperty.FindStringSubmatch(se.Reason); m != nil {
			ptr = append(ptr, m[1])
		}
		return []validate.FieldError{{Field: fieldPath(ptr), Message: schemaMessage(se)}}
	}
	if err == nil {
		return nil
	}
	return []validate.FieldError{{Field: "body", Message: firstLine(err.Error())}}
}

// unsupportedProperty finds the property kin-openapi names when additionalProperties is false;
// its JSON pointer stops at the parent object.
var unsupportedProperty = regexp.MustCompile(`^property "(.+)" is unsupported$`)

// fieldPath renders a JSON pointer as scopes[1].name, the way the fields read in the docs.
func fieldPath(ptr []string) string {
	var b strings.Builder
	for _, part := range ptr {
		if isIndex(part) {
			b.WriteString("[" + part + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// schemaMessage rewords kin-openapi's reasons for people: the property name moves to the
// field, the rule stays.
func schemaMessage(se *openapi3.SchemaError) string {
	if unsupportedProperty.MatchString(se.Reason) {
		return "is not a known field"
	}
	switch se.SchemaField {
	case "required":
		return "is required"
	case "enum":
		vals := make([]string, 0, len(se.Schema.Enum))
		for _, v := range se.Schema.Enum {
			vals = append(vals, fmt.Sprint(v))
		}
		return "must be one of: " + strings.Join(vals, ", ")
	}
	return firstLine(se.Reason)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// writeProblem renders p, adding the request id and path.
func writeProblem(c echo.Context, p *problem) error {
	out := p.Problem
	if out.Instance == nil {
		path := c.Request().URL.Path
		out.Instance = &path
	}
	if id := c.Response().Header().Get(echo.HeaderXRequestID); id != "" {
		out.RequestId = &id
	}
	for k, vs := range p.header {
		for _, v := range vs {
			c.Response().Header().Add(k, v)
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("error encoding problem: %w", err)
	}
	return c.Blob(out.Status, "application/problem+json", body)
}

// errorHandler is Echo's HTTPErrorHandler: every error leaves as problem+json.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := problemFromError(c.Request().Context(), err)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	if werr := writeProblem(c, p); werr != nil {
		slog.ErrorContext(c.Request().Context(), "error writing problem", "error", werr)
	}
}
