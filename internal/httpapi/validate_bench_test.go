package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

// benchBody is a message as the benchmark tool sends it: one recipient in a list, about
// 2 kB of text, a tag.
func benchBody(n int) []byte {
	msg := map[string]any{"from": "Shop <noreply@shop.example>", "to": []string{"jane@customer.example"},
		"subject": "Your report is ready", "text": strings.Repeat("Lorem ipsum dolor sit amet. ", 73), "tags": []string{"bench"}}
	if n == 0 {
		b, _ := json.Marshal(msg)
		return b
	}
	msgs := make([]any, n)
	for i := range msgs {
		msgs[i] = msg
	}
	b, _ := json.Marshal(map[string]any{"messages": msgs})
	return b
}

// validateFunc validates one POST of body to path the way the server's middleware does
// (credentials accepted without a lookup), with the schema validation options given.
func validateFunc(tb testing.TB, path string, body []byte, opts ...openapi3.SchemaValidationOption) func() error {
	spec, err := loadSpec()
	require.NoError(tb, err)
	validate := kinValidatorWith(tb, spec, opts...)
	return func() error { return validate(path, body) }
}

// kinValidatorWith validates POSTs against spec with kin-openapi as the server's middleware
// does (credentials accepted without a lookup), with the schema validation options given.
func kinValidatorWith(tb testing.TB, spec *openapi3.T, opts ...openapi3.SchemaValidationOption) func(path string, body []byte) error {
	router, err := gorillamux.NewRouter(spec)
	require.NoError(tb, err)
	options := &openapi3filter.Options{MultiError: true, SchemaValidationOptions: opts,
		AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil }}
	return func(path string, body []byte) error {
		req, _ := http.NewRequest(http.MethodPost, "http://localhost"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer x")
		route, params, err := router.FindRoute(req)
		if err != nil {
			return err
		}
		return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route, Options: options})
	}
}

// BenchmarkValidateRequest measures what the OpenAPI validator costs per request on the hot
// endpoints, as configured (schema dumps off) and with kin-openapi's defaults (dumps on).
func BenchmarkValidateRequest(b *testing.B) {
	for _, c := range []struct {
		name, path string
		n          int
	}{{"Single", "/v1/messages", 0}, {"Batch500", "/v1/messages/batch", 500}} {
		body := benchBody(c.n)
		for _, v := range []struct {
			name string
			opts []openapi3.SchemaValidationOption
		}{{"AsConfigured", []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}}, {"SchemaDumps", nil}} {
			b.Run(c.name+"/"+v.name, func(b *testing.B) {
				validate := validateFunc(b, c.path, body, v.opts...)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if err := validate(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestValidatorAcceptsTheBenchBodies keeps the benchmark honest: its bodies are valid.
func TestValidatorAcceptsTheBenchBodies(t *testing.T) {
	t.Parallel()
	require.NoError(t, validateFunc(t, "/v1/messages", benchBody(0), openapi3.DisableSchemaErrorDetails())())
	require.NoError(t, validateFunc(t, "/v1/messages/batch", benchBody(3), openapi3.DisableSchemaErrorDetails())())
	bad := validateFunc(t, "/v1/messages", []byte(`{"to":["a@b.example"],"subject":"x","text":"y","tags":"notalist"}`), openapi3.DisableSchemaErrorDetails())()
	require.Error(t, bad, "and the validator does refuse")
}
