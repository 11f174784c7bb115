package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk"
	"github.com/sendwerk/sendwerk/internal/httpapi"
)

// TestSpecEnumsMatchCode keeps the spec's lists of problem types and failure codes — from
// which the TypeScript client's string-literal unions are generated — equal to what the
// code can answer, so a new code cannot ship without its clients knowing it.
func TestSpecEnumsMatchCode(t *testing.T) {
	t.Parallel()
	spec, err := openapi3.NewLoader().LoadFromData(sendwerk.OpenAPISpec)
	require.NoError(t, err)
	enum := func(schema, prop string) []string {
		var out []string
		for _, v := range spec.Components.Schemas[schema].Value.Properties[prop].Value.Enum {
			out = append(out, v.(string))
		}
		slices.Sort(out)
		return out
	}

	problemTypes := []string{httpapi.TypeValidation, httpapi.TypeMalformedRequest, httpapi.TypeUnauthorized,
		httpapi.TypeForbidden, httpapi.TypeNotFound, httpapi.TypeMethodNotAllowed, httpapi.TypeConflict,
		httpapi.TypePayloadTooLarge, httpapi.TypeUnsupportedMediaType, httpapi.TypeRateLimited,
		httpapi.TypeUnavailable, httpapi.TypeInternal, "about:blank"}
	slices.Sort(problemTypes)
	require.Equal(t, problemTypes, enum("Problem", "type"))
	constants := sourceStrings(t, "../../internal/httpapi", regexp.MustCompile(`\bType[A-Za-z]+\s*=\s*ProblemTypePrefix \+ "([^"]+)"`))
	require.Len(t, constants, len(problemTypes)-1, "a problem type was added to httpapi: add it here and to Problem.type in openapi.yaml")

	delivery := sourceStrings(t, "../../internal/delivery", regexp.MustCompile(`\bCode[A-Za-z]*\s*=\s*"([^"]+)"`))
	require.Equal(t, delivery, enum("ConnectionTest", "code"), "openapi.yaml ConnectionTest.code must list every delivery code")
	require.Equal(t, delivery, enum("TestEmailResult", "code"), "openapi.yaml TestEmailResult.code must list every delivery code")

	checks := sourceStrings(t, "../../internal/dnscheck", regexp.MustCompile(`"((?:ownership|spf|dkim|dmarc|dns)\.[a-z_]+)"`))
	require.Equal(t, checks, enum("DomainCheckResult", "code"), "openapi.yaml DomainCheckResult.code must list every dnscheck code")
}

// sourceStrings collects the first group of re over the non-test Go files of dir, sorted and
// without repeats.
func sourceStrings(t *testing.T, dir string, re *regexp.Regexp) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
