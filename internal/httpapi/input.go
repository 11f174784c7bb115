package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sendwerk/sendwerk/internal/validate"
)

// checkInput is the one place where request strings are judged before anything stores them:
// PostgreSQL refuses NUL bytes and invalid UTF-8 in text (a 500 if they got that far), and
// encoding/json would silently turn invalid UTF-8 into U+FFFD. It refuses, naming the field:
//   - a NUL byte or invalid UTF-8 in the path, a query parameter or the Idempotency-Key (400);
//   - a JSON body that is not one JSON value, e.g. {"name":"x"}xyz (400);
//   - a NUL byte or invalid UTF-8 in any string or key of a JSON body (422).
//
// A body the route's bodyCheck accepts (see bodycheck.go) is all of that already.
// The OpenAPI validator and the handlers run after it.
func checkInput(checks map[string]*bodyCheck) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if !strings.HasPrefix(r.URL.Path, "/v1/") {
				return next(c)
			}
			if p := checkRequestLine(r); p != nil {
				return p
			}
			if r.Body == nil || r.Body == http.NoBody || !isJSON(r.Header.Get(echo.HeaderContentType)) {
				return next(c)
			}
			body, err := readBody(r)
			if err != nil {
				return err // the body limit's 413, or a client that went away
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bodyAccepted(c, checks, body) {
				c.Set(bodyCheckedKey, true) // one JSON value, all text valid, and valid for the spec
				return next(c)
			}
			if p := checkJSON(body); p != nil {
				return p
			}
			return next(c)
		}
	}
}

// bodyCheckedKey is set in the Echo context when the route's bodyCheck accepted the body:
// then checkJSON need not walk it, nor kin-openapi validate it.
const bodyCheckedKey = "sendwerk.bodyChecked"

// bodyAccepted reports whether the request's body is JSON (as kin-openapi would pick the
// operation's application/json schema) and the route's bodyCheck accepts it.
func bodyAccepted(c echo.Context, checks map[string]*bodyCheck, body []byte) bool {
	check := checks[c.Request().Method+" "+c.Path()]
	if check == nil {
		return false
	}
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	return err == nil && mt == echo.MIMEApplicationJSON && check.accepts(body)
}

// readBody reads the whole body into a buffer sized from Content-Length (up to 1 MiB, so a
// declared length alone cannot reserve much), instead of growing one from 512 bytes.
func readBody(r *http.Request) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), 1<<20)+bytes.MinRead))
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// checkRequestLine judges what arrives outside the body.
func checkRequestLine(r *http.Request) *problem {
	var fields []validate.FieldError
	if msg := badText(r.URL.Path); msg != "" {
		fields = append(fields, validate.FieldError{Field: "path", Message: msg})
	}
	q := r.URL.Query()
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		field := name
		if msg := badText(name); msg != "" {
			field = strconv.Quote(name)
			fields = append(fields, validate.FieldError{Field: field, Message: "is not a valid parameter name: " + msg})
			continue
		}
		for _, v := range q[name] {
			if msg := badText(v); msg != "" {
				fields = append(fields, validate.FieldError{Field: field, Message: msg})
				break
			}
		}
	}
	if msg := badText(r.Header.Get("Idempotency-Key")); msg != "" {
		fields = append(fields, validate.FieldError{Field: "Idempotency-Key", Message: msg})
	}
	if len(fields) == 0 {
		return nil
	}
	return problemValidation(http.StatusBadRequest, fields)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// badText says what is wrong with a string no text column may hold, or "".
func badText(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain NUL characters (\\u0000)"
	}
	return ""
}

// checkJSON walks a body token by token: it must be exactly one JSON value, and every string
// (and key) in it valid text. An empty body is left to the OpenAPI validator.
func checkJSON(body []byte) *problem {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if plainText(body) {
		return oneValue(body)
	}
	w := &jsonWalk{dec: json.NewDecoder(bytes.NewReader(body)), body: body}
	w.dec.UseNumber()
	if err := w.value(); err != nil {
		return w.problem(err)
	}
	if _, err := w.dec.Token(); !errors.Is(err, io.EOF) {
		return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request",
			fmt.Sprintf("the request body must be one JSON value; more data follows at byte %d", w.dec.InputOffset()))
	}
	if len(w.fields) > 0 {
		return problemValidation(http.StatusUnprocessableEntity, w.fields)
	}
	return nil
}

// plainText reports whether no string in body can hold a NUL or invalid UTF-8: the bytes
// are valid UTF-8 and there is no \u escape (a raw NUL is invalid JSON anyway). Most bodies
// are; they skip the token walk.
func plainText(body []byte) bool {
	return utf8.Valid(body) && !bytes.Contains(body, []byte(`\u`))
}

// oneValue refuses a body that is not exactly one JSON value. json.Valid answers that in
// one scan; only a refused body is decoded again, for the words of the problem.
func oneValue(body []byte) *problem {
	if json.Valid(body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request",
			"the request body is not valid JSON: "+firstLine(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request",
			fmt.Sprintf("the request body must be one JSON value; more data follows at byte %d", dec.InputOffset()))
	}
	return nil
}

// jsonWalk reads one JSON value, keeping the path to the current token for field names.
type jsonWalk struct {
	dec    *json.Decoder
	body   []byte
	path   []string
	fields []validate.FieldError
}

func (w *jsonWalk) problem(err error) *problem {
	return newProblem(http.StatusBadRequest, TypeMalformedRequest, "Malformed request",
		"the request body is not valid JSON: "+firstLine(err.Error()))
}

// value reads one value; containers recursively (the body limit bounds the depth's cost,
// and depth is capped to keep the stack small).
func (w *jsonWalk) value() error {
	if len(w.path) > 64 {
		return errors.New("nested more than 64 levels deep")
	}
	start := w.dec.InputOffset()
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return w.object()
		}
		return w.array()
	case string:
		w.checkString(t, start)
	}
	return nil
}

func (w *jsonWalk) object() error {
	for w.dec.More() {
		start := w.dec.InputOffset()
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		w.path = append(w.path, key)
		w.checkString(key, start)
		if err := w.value(); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	_, err := w.dec.Token() // '}'
	return err
}

func (w *jsonWalk) array() error {
	for i := 0; w.dec.More(); i++ {
		w.path = append(w.path, strconv.Itoa(i))
		if err := w.value(); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	_, err := w.dec.Token() // ']'
	return err
}

// checkString judges a decoded string with its raw bytes (from start to the decoder's
// offset): encoding/json replaces invalid UTF-8 and lone surrogate escapes with U+FFFD,
// so a U+FFFD the raw text does not spell out marks invalid input.
func (w *jsonWalk) checkString(s string, start int64) {
	msg := ""
	switch {
	case strings.IndexByte(s, 0) >= 0:
		msg = "must not contain NUL characters (\\u0000)"
	case strings.ContainsRune(s, utf8.RuneError):
		raw := w.body[start:w.dec.InputOffset()]
		spelled := bytes.Count(raw, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(raw), []byte(`\ufffd`))
		if strings.Count(s, "\uFFFD") > spelled {
			msg = "must be valid UTF-8 (JSON text is UTF-8; \\uXXXX escapes must not be lone surrogates)"
		}
	}
	if msg != "" {
		w.fields = append(w.fields, validate.FieldError{Field: fieldPath(w.path), Message: msg})
	}
}
