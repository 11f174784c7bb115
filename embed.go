// Package sendwerk holds the API contract, embedded so the binary serves and validates against
// exactly the openapi.yaml it was built from.
package sendwerk

import _ "embed"

// OpenAPISpec is openapi.yaml, the single source of HTTP truth.
//
//go:embed openapi.yaml
var OpenAPISpec []byte
