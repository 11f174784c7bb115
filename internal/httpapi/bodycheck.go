package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

// bodyCheck is a request body schema from openapi.yaml compiled into a check that runs on the
// raw bytes, without decoding the body into maps first as kin-openapi does (that decode and
// the schema walk on it were most of the validator's cost on POST /v1/messages).
//
// It only ever says "certainly valid": anything it does not understand, and every body it
// would refuse, goes through kin-openapi's full validation, so every 400 keeps naming the
// field and rule it named before. A schema using a keyword the compiler does not know gets no
// bodyCheck at all (compileBody refuses it), so a new rule in the spec can never be skipped.
type bodyCheck struct {
	kind     byte // kString, kObject, kArray, kBool or kOneOf
	nullable bool

	// strings
	minLen, maxLen int // maxLen < 0: no limit
	leaf           *openapi3.Schema
	leafOpts       []openapi3.SchemaValidationOption

	// arrays
	minItems, maxItems int
	items              *bodyCheck

	// objects
	props      map[string]int
	propChecks []*bodyCheck
	required   uint64 // bit i: propChecks[i] is required
	extra      *bodyCheck
	noExtra    bool
	maxProps   int

	// oneOf whose alternatives each take a different JSON type: the one of that type decides
	alts [kBool + 1]*bodyCheck
}

const (
	kString byte = iota
	kObject
	kArray
	kBool
	kOneOf
)

// maxBodyCheckDepth bounds compilation; a deeper (or recursive) schema gets no bodyCheck.
const maxBodyCheckDepth = 16

// compileBody returns the check for an operation's JSON request body, or nil when its schema
// uses anything the check does not implement.
func compileBody(rb *openapi3.RequestBodyRef, opts []openapi3.SchemaValidationOption) *bodyCheck {
	if rb == nil || rb.Value == nil || !rb.Value.Required || len(rb.Value.Content) != 1 {
		return nil
	}
	mt := rb.Value.Content["application/json"]
	if mt == nil || mt.Schema == nil || len(mt.Encoding) > 0 {
		return nil
	}
	return compileSchema(mt.Schema, opts, 0)
}

func compileSchema(ref *openapi3.SchemaRef, opts []openapi3.SchemaValidationOption, depth int) *bodyCheck {
	if ref == nil || ref.Value == nil || depth > maxBodyCheckDepth || !onlyKnownKeywords(ref.Value) {
		return nil
	}
	s := ref.Value
	if len(s.OneOf) > 0 {
		return compileOneOf(s, opts, depth)
	}
	if s.Type == nil || len(*s.Type) != 1 {
		return nil
	}
	c := &bodyCheck{nullable: s.Nullable, maxLen: -1, maxItems: -1, maxProps: -1}
	switch (*s.Type)[0] {
	case openapi3.TypeString:
		if arrayRules(s) || objectRules(s) {
			return nil
		}
		return c.compileString(s, opts)
	case openapi3.TypeBoolean:
		if stringRules(s) || arrayRules(s) || objectRules(s) {
			return nil
		}
		c.kind = kBool
		return c
	case openapi3.TypeArray:
		if stringRules(s) || objectRules(s) {
			return nil
		}
		return c.compileArray(s, opts, depth)
	case openapi3.TypeObject:
		if stringRules(s) || arrayRules(s) {
			return nil
		}
		return c.compileObject(s, opts, depth)
	}
	return nil // numbers and integers are not compiled
}

func (c *bodyCheck) compileString(s *openapi3.Schema, opts []openapi3.SchemaValidationOption) *bodyCheck {
	c.kind = kString
	c.minLen = int(s.MinLength)
	if s.MaxLength != nil {
		c.maxLen = int(*s.MaxLength)
	}
	if s.Format != "" || s.Pattern != "" || len(s.Enum) > 0 {
		c.leaf, c.leafOpts = s, opts // rare rules: kin-openapi judges the one string
	}
	return c
}

func (c *bodyCheck) compileArray(s *openapi3.Schema, opts []openapi3.SchemaValidationOption, depth int) *bodyCheck {
	c.kind = kArray
	c.minItems = int(s.MinItems)
	if s.MaxItems != nil {
		c.maxItems = int(*s.MaxItems)
	}
	if c.items = compileSchema(s.Items, opts, depth+1); c.items == nil {
		return nil
	}
	return c
}

func (c *bodyCheck) compileObject(s *openapi3.Schema, opts []openapi3.SchemaValidationOption, depth int) *bodyCheck {
	c.kind = kObject
	if s.MaxProps != nil {
		c.maxProps = int(*s.MaxProps)
	}
	if len(s.Properties) > 64 {
		return nil
	}
	c.props = make(map[string]int, len(s.Properties))
	for name, p := range s.Properties {
		pc := compileSchema(p, opts, depth+1)
		if pc == nil {
			return nil
		}
		c.props[name] = len(c.propChecks)
		c.propChecks = append(c.propChecks, pc)
	}
	for _, name := range s.Required {
		i, ok := c.props[name]
		if !ok {
			return nil // required but not described: leave it to kin-openapi
		}
		c.required |= 1 << i
	}
	switch ap := s.AdditionalProperties; {
	case ap.Has != nil && !*ap.Has:
		c.noExtra = true
	case ap.Schema != nil:
		if c.extra = compileSchema(ap.Schema, opts, depth+1); c.extra == nil {
			return nil
		}
	default:
		return nil // any value allowed: not compiled
	}
	return c
}

// compileOneOf compiles a oneOf whose alternatives have one JSON type each, all different:
// then exactly one alternative can match, the one of the value's type. An alternative that
// is itself such a oneOf (an address, or a list of them) adds its alternatives.
func compileOneOf(s *openapi3.Schema, opts []openapi3.SchemaValidationOption, depth int) *bodyCheck {
	if s.Type != nil || s.Nullable || stringRules(s) || arrayRules(s) || objectRules(s) {
		return nil
	}
	c := &bodyCheck{kind: kOneOf}
	for _, alt := range s.OneOf {
		ac := compileSchema(alt, opts, depth+1)
		if ac == nil {
			return nil
		}
		nested := []*bodyCheck{ac}
		if ac.kind == kOneOf { // its alternatives join these: all types still differ
			nested = ac.alts[:]
		}
		for _, a := range nested {
			if a == nil {
				continue
			}
			if a.nullable || c.alts[a.kind] != nil {
				return nil
			}
			c.alts[a.kind] = a
		}
	}
	return c
}

// stringRules, arrayRules and objectRules report whether s has rules of that kind; a schema
// with rules for another type than its own is left to kin-openapi.
func stringRules(s *openapi3.Schema) bool {
	return s.Format != "" || s.Pattern != "" || len(s.Enum) > 0 || s.MinLength > 0 || s.MaxLength != nil
}

func arrayRules(s *openapi3.Schema) bool {
	return s.MinItems > 0 || s.MaxItems != nil || s.Items != nil
}

func objectRules(s *openapi3.Schema) bool {
	return len(s.Required) > 0 || len(s.Properties) > 0 || s.MaxProps != nil ||
		s.AdditionalProperties.Has != nil || s.AdditionalProperties.Schema != nil
}

// onlyKnownKeywords reports whether s uses nothing beyond what bodyCheck implements (or may
// ignore: descriptions, examples, extensions).
func onlyKnownKeywords(s *openapi3.Schema) bool {
	rest := *s
	rest.Extensions, rest.Origin = nil, nil
	rest.Title, rest.Description, rest.Example, rest.Examples, rest.ExternalDocs, rest.Deprecated = "", "", nil, nil, nil, false
	rest.OneOf, rest.Type, rest.Format, rest.Enum, rest.Nullable = nil, nil, "", nil, false
	rest.MinLength, rest.MaxLength, rest.Pattern = 0, nil, ""
	rest.MinItems, rest.MaxItems, rest.Items = 0, nil, nil
	rest.Required, rest.Properties, rest.MaxProps, rest.AdditionalProperties = nil, nil, nil, openapi3.AdditionalProperties{}
	b, err := json.Marshal(&rest)
	return err == nil && string(b) == "{}"
}

// accepts reports whether body certainly satisfies the schema; false means "let kin-openapi
// judge it" (the body may still be valid).
func (c *bodyCheck) accepts(body []byte) bool {
	sc := scanner{b: body}
	if !c.value(&sc) {
		return false
	}
	sc.ws()
	return sc.i == len(sc.b)
}

// scanner walks raw JSON bytes.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) literal(word string) bool {
	if !strings.HasPrefix(string(s.b[s.i:min(len(s.b), s.i+len(word))]), word) {
		return false
	}
	s.i += len(word)
	return true
}

// str reads a string at s.i ('"'), returning its raw bytes between the quotes and whether it
// holds escapes. Control characters and invalid UTF-8 fail.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			raw = s.b[start:i]
			return raw, escaped, utf8.Valid(raw)
		case c == '\\':
			escaped = true
			n := escapeLen(s.b[i:])
			if n == 0 {
				return nil, false, false
			}
			i += n - 1
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// escapeLen returns the length of the escape b starts with (at its backslash), or 0 when it
// is not one the check accepts: besides invalid syntax, \u0000 and a lone surrogate, which
// checkInput refuses (a NUL or invalid UTF-8 in text). A surrogate pair is one escape.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
	default:
		return 0
	}
	v, ok := hex4(b[2:])
	switch {
	case !ok || v == 0 || (v >= 0xDC00 && v < 0xE000):
		return 0
	case v < 0xD800 || v >= 0xE000:
		return 6
	}
	if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
		return 0
	}
	if low, ok := hex4(b[8:]); !ok || low < 0xDC00 || low >= 0xE000 {
		return 0
	}
	return 12
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var v rune
	for _, h := range b[:4] {
		switch {
		case '0' <= h && h <= '9':
			v = v<<4 | rune(h-'0')
		case 'a' <= h && h <= 'f':
			v = v<<4 | rune(h-'a'+10)
		case 'A' <= h && h <= 'F':
			v = v<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// text returns a string's value; escapes are decoded by encoding/json, as kin-openapi's
// decoder does.
func text(raw []byte, escaped bool) (string, bool) {
	if !escaped {
		return string(raw), true
	}
	var v string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	if err := json.Unmarshal(quoted, &v); err != nil {
		return "", false
	}
	return v, true
}

func (c *bodyCheck) value(s *scanner) bool {
	ch := s.peek()
	if ch == 'n' && c.kind != kOneOf {
		return c.nullable && s.literal("null")
	}
	switch c.kind {
	case kString:
		return c.string(s)
	case kBool:
		return s.literal("true") || s.literal("false")
	case kArray:
		return c.array(s)
	case kObject:
		return c.object(s)
	}
	var alt *bodyCheck // kOneOf
	switch ch {
	case '"':
		alt = c.alts[kString]
	case '{':
		alt = c.alts[kObject]
	case '[':
		alt = c.alts[kArray]
	case 't', 'f':
		alt = c.alts[kBool]
	}
	return alt != nil && alt.value(s)
}

func (c *bodyCheck) string(s *scanner) bool {
	raw, escaped, ok := s.str()
	if !ok {
		return false
	}
	if c.leaf == nil {
		n := len(raw) // kin-openapi counts characters; the raw bytes bound them from above
		if c.minLen > 0 || (c.maxLen >= 0 && n > c.maxLen) {
			n = runeCount(raw, escaped)
		}
		return n >= c.minLen && (c.maxLen < 0 || n <= c.maxLen)
	}
	v, ok := text(raw, escaped)
	if !ok {
		return false
	}
	n := utf8.RuneCountInString(v)
	if n < c.minLen || (c.maxLen >= 0 && n > c.maxLen) {
		return false
	}
	return c.leaf.VisitJSON(v, c.leafOpts...) == nil
}

// runeCount is the number of characters raw (valid UTF-8 whose escapes escapeLen accepts)
// decodes to: an escape is one, a surrogate pair of \u escapes one.
func runeCount(raw []byte, escaped bool) int {
	if !escaped {
		return utf8.RuneCount(raw)
	}
	n := 0
	for i := 0; i < len(raw); n++ {
		if raw[i] == '\\' {
			i += escapeLen(raw[i:])
			continue
		}
		_, size := utf8.DecodeRune(raw[i:])
		i += size
	}
	return n
}

func (c *bodyCheck) array(s *scanner) bool {
	if s.peek() != '[' {
		return false
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return c.minItems == 0
	}
	for n := 1; ; n++ {
		if (c.maxItems >= 0 && n > c.maxItems) || !c.items.value(s) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return n >= c.minItems
		default:
			return false
		}
	}
}

func (c *bodyCheck) object(s *scanner) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	var seen uint64
	var extra map[string]bool // keys taken by additionalProperties, to find repeats
	if s.peek() == '}' {
		s.i++
		return c.required == 0
	}
	for n := 1; ; n++ {
		if !c.member(s, &seen, &extra) || (c.maxProps >= 0 && n > c.maxProps) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return seen&c.required == c.required
		default:
			return false
		}
	}
}

// member reads `"key": value`. A key with escapes is not looked up, and a key the object
// already had is not judged here (kin-openapi judges both: whether a repeated name is an
// error depends on its JSON decoder).
func (c *bodyCheck) member(s *scanner, seen *uint64, extra *map[string]bool) bool {
	key, escaped, ok := s.str()
	if !ok || escaped || s.peek() != ':' {
		return false
	}
	s.i++
	if i, ok := c.props[string(key)]; ok {
		if *seen&(1<<i) != 0 {
			return false
		}
		*seen |= 1 << i
		return c.propChecks[i].value(s)
	}
	if c.noExtra || c.extra == nil {
		return false
	}
	if *extra == nil {
		*extra = map[string]bool{}
	}
	if (*extra)[string(key)] {
		return false
	}
	(*extra)[string(key)] = true
	return c.extra.value(s)
}

// hotBodyRoutes are the routes whose bodies the server checks with a bodyCheck: the ones
// every message goes through, which TestBodyCheck runs against kin-openapi.
var hotBodyRoutes = []string{"POST /v1/messages", "POST /v1/messages/batch"}

// bodyChecks compiles a bodyCheck for the operations of an OpenAPI 3.0 spec that take a JSON
// body, keyed by method and Echo route ("POST /v1/messages", "PATCH /v1/domains/:id"): those
// of routes, or all when routes is empty.
func bodyChecks(spec *openapi3.T, opts []openapi3.SchemaValidationOption, routes ...string) map[string]*bodyCheck {
	checks := map[string]*bodyCheck{}
	if spec.IsOpenAPI31OrLater() {
		return checks // kin-openapi validates 3.1 schemas as JSON Schema 2020-12, which the check does not
	}
	for path, item := range spec.Paths.Map() {
		route := echoRoute(path)
		for method, op := range item.Operations() {
			if op.RequestBody == nil || method == http.MethodGet {
				continue
			}
			key := method + " " + route
			if len(routes) > 0 && !slices.Contains(routes, key) {
				continue
			}
			if c := compileBody(op.RequestBody, opts); c != nil {
				checks[key] = c
			}
		}
	}
	return checks
}

// echoRoute turns /v1/domains/{id} into Echo's /v1/domains/:id.
func echoRoute(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '{':
			b.WriteByte(':')
		case '}':
		default:
			b.WriteByte(path[i])
		}
	}
	return b.String()
}
