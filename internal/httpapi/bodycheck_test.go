package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
)

// TestBodyCheck proves the cheap body check never accepts what kin-openapi, validating
// against openapi.yaml, refuses: a table of bad bodies, and many random variations of good
// ones, go through both. It also proves the check accepts ordinary valid bodies, so the
// fast path is actually taken.
func TestBodyCheck(t *testing.T) {
	t.Parallel()
	spec, err := loadSpec()
	require.NoError(t, err)
	schemaOpts := []openapi3.SchemaValidationOption{openapi3.VisitAsRequest(), openapi3.DisableSchemaErrorDetails()}
	checks := bodyChecks(spec, schemaOpts)

	type testBundle struct {
		check *bodyCheck
		path  string
	}
	setup := func(t *testing.T, route string) testBundle {
		t.Helper()
		c := checks["POST "+route]
		require.NotNil(t, c, "openapi.yaml's body for POST %s compiles", route)
		return testBundle{check: c, path: route}
	}
	// agree asserts that the check accepts body only when kin-openapi does, and returns
	// both verdicts.
	kinValidate := kinValidator(t, spec)
	agree := func(t *testing.T, b testBundle, body string) (fast, kin bool) {
		t.Helper()
		kinErr := kinValidate(b.path, []byte(body))
		fast = b.check.accepts([]byte(body))
		if fast {
			require.NoError(t, kinErr, "the check accepted a body kin-openapi refuses: %s", body)
			require.Nil(t, checkJSON([]byte(body)), "the check accepted a body checkInput refuses: %s", body)
		}
		return fast, kinErr == nil
	}

	t.Run("AcceptsValidMessages", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "/v1/messages")
		for _, body := range []string{
			string(benchBody(0)),
			`{"from":{"email":"noreply@shop.example","name":"Shop"},"to":"jane@customer.example","subject":"Hi","text":"line\nnext \u00e9 \"q\""}`,
			`{"from":"a@b.example","subject":"","to":[{"email":"x@y.example"}],"cc":[],"bcc":["c@d.example"],"reply_to":["r@s.example"],` +
				`"html":"<p>hi</p>","attachments":[{"filename":"a.txt","content":"aGk=","content_type":"text/plain","content_id":"c1"}],` +
				`"headers":{"X-Campaign":"x"},"tags":["a","b"],"metadata":{"k":"v"},"send_at":"2030-01-02T03:04:05Z","connector_id":"con_1"}`,
			` { "from" : "Ünïcødé Näme <ü@b.example>" , "subject" : "ä" } `,
			`{"from":"\uD83D\uDE00ab","subject":"\u00e9` + strings.Repeat("x", 997) + `"}`,
			`{"from":"a@b.example","subject":"` + strings.Repeat(`\n`, 998) + `","tags":["\t"]}`,
		} {
			fast, kin := agree(t, b, body)
			require.True(t, kin, "kin-openapi accepts %s", body)
			require.True(t, fast, "the check accepts %s", body)
		}
	})

	t.Run("RefusesWhatTheSpecRefuses", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "/v1/messages")
		long := func(n int) string { return strings.Repeat("x", n) }
		for _, body := range []string{
			`{"subject":"x"}`, // from missing
			`{"from":"a@b.example"}`,
			`{"from":"a@b.example","subject":"x","unknown":1}`,
			`{"from":"ab","subject":"x"}`,
			`{"from":"` + long(321) + `","subject":"x"}`,
			`{"from":{"name":"x"},"subject":"x"}`,
			`{"from":{"email":"a@b.example","extra":"x"},"subject":"x"}`,
			`{"from":{"email":"a@b.example","name":"` + long(201) + `"},"subject":"x"}`,
			`{"from":["a@b.example"],"subject":"x"}`,
			`{"from":null,"subject":"x"}`,
			`{"from":1,"subject":"x"}`,
			`{"from":true,"subject":"x"}`,
			`{"from":"a@b.example","subject":"` + long(999) + `"}`,
			`{"from":"a@b.example","subject":"x","to":"ab"}`,
			`{"from":"a@b.example","subject":"x","to":[` + strings.Repeat(`"a@b.example",`, 50) + `"a@b.example"]}`,
			`{"from":"a@b.example","subject":"x","to":[["a@b.example"]]}`,
			`{"from":"a@b.example","subject":"x","to":{"email":"a@b.example","x":1}}`,
			`{"from":"a@b.example","subject":"x","cc":"a@b.example"}`,
			`{"from":"a@b.example","subject":"x","tags":"x"}`,
			`{"from":"a@b.example","subject":"x","tags":[""]}`,
			`{"from":"a@b.example","subject":"x","tags":["` + long(65) + `"]}`,
			`{"from":"a@b.example","subject":"x","tags":["a","b","c","d","e","f","g","h","i","j","k"]}`,
			`{"from":"a@b.example","subject":"x","headers":{"X-A":1}}`,
			`{"from":"a@b.example","subject":"x","headers":{"X-A":"` + long(901) + `"}}`,
			`{"from":"a@b.example","subject":"x","metadata":[]}`,
			`{"from":"a@b.example","subject":"x","send_at":"tomorrow"}`,
			`{"from":"a@b.example","subject":"x","send_at":"2030-13-45T99:00:00Z"}`,
			`{"from":"a@b.example","subject":"x","attachments":[{"filename":"a"}]}`,
			`{"from":"a@b.example","subject":"x","attachments":[{"filename":"","content":""}]}`,
			`{"from":"a@b.example","subject":"x","attachments":[{"filename":"a","content":"","bogus":""}]}`,
			`{"from":"a@b.example","subject":"x","connector_id":"` + long(41) + `"}`,
			`{"from":"a@b.example","subject":"x","text":null}`,
			`{"from":"a@b.example","subject":"\u0041` + long(998) + `"}`,
			`{"from":"\uD83D\uDE00a","subject":"x"}`,
			`{"from":"a@b.example","subject":"` + strings.Repeat(`\n`, 999) + `"}`,
			`{"from":"a@b.example","subject":"\x"}`,
			`{"from":"a@b.example","subject":"a\u0000b"}`,
			`{"from":"a@b.example","subject":"\ud800"}`,
			`{"from":"a@b.example","subject":"\udc00\ud800"}`,
			`{"from":"a@b.example","subject":"\ud800\u0041"}`,
			`{"from":"a@b.example","subject":"x","metadata":{"a\u0000":"x"}}`,
			"{\"from\":\"a@b.example\",\"subject\":\"\xff\"}",
			`{"from":"a@b.example","subject":"\u12"}`,
			`{"from":"a@b.example","subject":"x` + "\n" + `"}`,
			`{"from":"a@b.example","subject":"x"} trailing`,
			`{"from":"a@b.example","subject":"x",}`,
			`{"from":"a@b.example" "subject":"x"}`,
			`[]`, `"x"`, `null`, ``, `{`,
			// A repeated name is left to kin-openapi, whose JSON decoder decides whether it
			// is an error (encoding/json keeps the last; a v2 decoder refuses it).
			`{"from":"a@b.example","subject":"x","subject":"y"}`,
			`{"from":"a@b.example","subject":"x","metadata":{"a":"x","a":"y"}}`,
		} {
			fast, kin := agree(t, b, body)
			require.False(t, fast, "the check refuses %s", body)
			_ = kin
		}
	})

	t.Run("AgreesOnRandomVariations", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "/v1/messages")
		rng := rand.New(rand.NewPCG(13, 13))
		accepted, refusedByKin := 0, 0
		for range 3000 {
			body := randomMessage(rng)
			fast, kin := agree(t, b, body)
			if fast {
				accepted++
			}
			if !kin {
				refusedByKin++
			}
		}
		t.Logf("%d of 3000 taken by the check, %d refused by kin-openapi", accepted, refusedByKin)
		require.Positive(t, accepted, "some variations take the fast path")
		require.Positive(t, refusedByKin, "some variations are invalid")
		require.Equal(t, 3000-refusedByKin, accepted, "and every valid one takes the fast path")
	})

	t.Run("HotRoutesCompile", func(t *testing.T) {
		t.Parallel()
		hot := bodyChecks(spec, schemaOpts, hotBodyRoutes...)
		require.Equal(t, hotBodyRoutes, keys(hot))
	})

	t.Run("NoneForOpenAPI31", func(t *testing.T) {
		t.Parallel()
		spec31, err := loadSpec()
		require.NoError(t, err)
		spec31.OpenAPI = "3.1.0"
		require.Empty(t, bodyChecks(spec31, schemaOpts), "3.1 schemas are JSON Schema 2020-12: kin-openapi judges them all")
		t.Logf("compiled: %v", keys(checks))
		require.NotEmpty(t, checks, "while the 3.0 spec's bodies compile")
	})

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "/v1/messages/batch")
		fast, kin := agree(t, b, string(benchBody(3)))
		require.True(t, kin)
		require.True(t, fast)
		fast, kin = agree(t, b, `{"messages":[{"from":"a@b.example"}]}`)
		require.False(t, fast)
		require.False(t, kin)
	})
}

// kinValidator validates POSTs the way the server's middleware does when it validates a body
// with kin-openapi (credentials accepted without a lookup, schema error details off).
func kinValidator(t *testing.T, spec *openapi3.T) func(path string, body []byte) error {
	return kinValidatorWith(t, spec, openapi3.DisableSchemaErrorDetails())
}

// randomMessage returns a message body with a few random fields, each valid or (often)
// just past one of the spec's limits, of a wrong type, or oddly spelled.
func randomMessage(rng *rand.Rand) string {
	str := func(n int) string {
		alphabet := []rune("ab@.x <>ä€😀\"\\\n")
		r := make([]rune, n)
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	bad := func() bool { return rng.IntN(12) == 0 }
	near := func(limit int) int { // mostly at the limit, sometimes just past it
		if bad() {
			return limit + 1
		}
		return max(0, limit-rng.IntN(2))
	}
	addr := func() any {
		if bad() {
			return []any{nil, map[string]any{"name": "x"}, 7, str(2)}[rng.IntN(4)]
		}
		switch rng.IntN(4) {
		case 0:
			return map[string]any{"email": str(near(3))}
		case 1:
			return map[string]any{"email": "a@b.example", "name": str(near(200))}
		case 2:
			return str(near(320))
		}
		return str(near(3))
	}
	list := func(limit int) any {
		n := near(limit)
		if rng.IntN(3) > 0 {
			n = rng.IntN(3)
		}
		l := make([]any, n)
		for i := range l {
			l[i] = addr()
		}
		return l
	}
	fields := map[string]func() any{
		"from":     addr,
		"subject":  func() any { return str(near(998)) },
		"to":       func() any { return []any{addr(), list(50)}[rng.IntN(2)] },
		"cc":       func() any { return list(50) },
		"reply_to": func() any { return list(10) },
		"text": func() any {
			if bad() {
				return []any{7, nil}[rng.IntN(2)]
			}
			return str(40)
		},
		"connector_id": func() any { return str(near(40)) },
		"tags": func() any {
			l := make([]any, near(10))
			for i := range l {
				l[i] = str(near(1 + 63*rng.IntN(2)))
			}
			return l
		},
		"headers": func() any {
			m := map[string]any{}
			for i := range near(50) {
				m[fmt.Sprint("X-", i)] = str(near(900))
			}
			return m
		},
		"send_at": func() any {
			if bad() {
				return []any{"2030-01-02", "x"}[rng.IntN(2)]
			}
			return "2030-01-02T03:04:05Z"
		},
		"attachments": func() any { return []any{map[string]any{"filename": str(near(1)), "content": "aGk="}} },
		"bogus":       func() any { return "x" },
	}
	msg := map[string]any{}
	for name, f := range fields {
		if name == "from" || name == "subject" {
			if rng.IntN(20) > 0 {
				msg[name] = f()
			}
			continue
		}
		if rng.IntN(4) == 0 && (name != "bogus" || bad()) {
			msg[name] = f()
		}
	}
	b, _ := json.Marshal(msg)
	return string(b)
}

// BenchmarkBodyCheck measures the cheap check on the bodies BenchmarkValidateRequest gives
// kin-openapi.
func BenchmarkBodyCheck(b *testing.B) {
	spec, err := loadSpec()
	require.NoError(b, err)
	checks := bodyChecks(spec, nil)
	for _, c := range []struct {
		name, path string
		n          int
	}{{"Single", "/v1/messages", 0}, {"Batch500", "/v1/messages/batch", 500}} {
		body, check := benchBody(c.n), checks["POST "+c.path]
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if !check.accepts(body) {
					b.Fatal("refused")
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
