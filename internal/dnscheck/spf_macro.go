package dnscheck

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// macroKind tells literal text from the two kinds of RFC 7208 macro-expand.
type macroKind int

const (
	macroLiteral macroKind = iota // plain text
	macroEscape                   // "%%", "%_" or "%-": a macro-expand that yields fixed text
	macroLetter                   // "%{...}"
)

// macroToken is one piece of a parsed macro-string.
type macroToken struct {
	kind    macroKind
	text    string // literal or escape output
	letter  byte   // lower-case macro letter
	upper   bool   // upper-case letter: URL-escape the result
	digits  int    // keep this many right-hand parts; 0 keeps all
	reverse bool
	delims  string
}

// macroString is a parsed macro-string (RFC 7208 section 7.1), checked once when the
// record is parsed so syntax errors anywhere give permerror before evaluation.
type macroString []macroToken

const (
	domainMacroLetters  = "slodipvh"
	explainMacroLetters = "slodipvhcrt"
	macroDelimiters     = ".-+,/_="
	maxMacroDigits      = 128
)

var errMacroSyntax = errors.New("invalid macro")

// parseMacroString checks and splits s. explain selects explanation-string rules:
// spaces and the c, r, t letters are allowed only there.
func parseMacroString(s string, explain bool) (macroString, error) {
	letters := domainMacroLetters
	if explain {
		letters = explainMacroLetters
	}
	var out macroString
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			if !isMacroLiteral(c, explain) {
				return nil, fmt.Errorf("%w: character %q not allowed", errMacroSyntax, c)
			}
			out = out.appendLiteral(string(c))
			i++
			continue
		}
		tok, n, err := parseMacroExpand(s[i:], letters)
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
		i += n
	}
	return out, nil
}

func isMacroLiteral(c byte, explain bool) bool {
	return (c >= 0x21 && c <= 0x7e && c != '%') || (explain && c == ' ')
}

func (m macroString) appendLiteral(s string) macroString {
	if n := len(m); n > 0 && m[n-1].kind == macroLiteral {
		m[n-1].text += s
		return m
	}
	return append(m, macroToken{kind: macroLiteral, text: s})
}

// parseMacroExpand parses the macro-expand at the start of s (which begins with
// '%') and returns it with the number of bytes used.
func parseMacroExpand(s string, letters string) (macroToken, int, error) {
	if len(s) < 2 {
		return macroToken{}, 0, fmt.Errorf("%w: %q ends the string", errMacroSyntax, s)
	}
	switch s[1] {
	case '%':
		return macroToken{kind: macroEscape, text: "%"}, 2, nil
	case '_':
		return macroToken{kind: macroEscape, text: " "}, 2, nil
	case '-':
		return macroToken{kind: macroEscape, text: "%20"}, 2, nil
	case '{':
	default:
		return macroToken{}, 0, fmt.Errorf("%w: %q", errMacroSyntax, s[:2])
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return macroToken{}, 0, fmt.Errorf("%w: unterminated %q", errMacroSyntax, s)
	}
	tok, err := parseMacroBody(s[2:end], letters)
	if err != nil {
		return macroToken{}, 0, err
	}
	return tok, end + 1, nil
}

// parseMacroBody parses "letter *DIGIT [r] *delimiter".
func parseMacroBody(body, letters string) (macroToken, error) {
	bad := fmt.Errorf("%w: %%{%s}", errMacroSyntax, body)
	if body == "" {
		return macroToken{}, bad
	}
	l := body[0] | 0x20
	if !strings.ContainsRune(letters, rune(l)) || !isAlpha(body[0]) {
		return macroToken{}, bad
	}
	tok := macroToken{kind: macroLetter, letter: l, upper: body[0] >= 'A' && body[0] <= 'Z'}
	rest := body[1:]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n > 0 {
		v, err := strconv.Atoi(rest[:min(n, 4)])
		if err != nil || v == 0 {
			return macroToken{}, bad // RFC 7208 7.3: the digit count must be nonzero
		}
		tok.digits = min(v, maxMacroDigits)
		rest = rest[n:]
	}
	if rest != "" && (rest[0] == 'r' || rest[0] == 'R') {
		tok.reverse = true
		rest = rest[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(macroDelimiters, rune(rest[i])) {
			return macroToken{}, bad
		}
	}
	tok.delims = rest
	return tok, nil
}

// endsAsDomain checks the domain-end rule of a domain-spec: it ends in a
// macro-expand, or in "." toplabel with an optional trailing dot.
func (m macroString) endsAsDomain() bool {
	if len(m) == 0 {
		return false
	}
	last := m[len(m)-1]
	if last.kind != macroLiteral {
		return true
	}
	text := strings.TrimSuffix(last.text, ".")
	dot := strings.LastIndexByte(text, '.')
	return dot >= 0 && isTopLabel(text[dot+1:])
}

// isTopLabel implements toplabel = ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ): not all digits, no leading or
// trailing dash.
func isTopLabel(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	special := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlpha(c) || c == '-':
			special = true
		case c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return special
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || (c >= '0' && c <= '9') }

// macroEnv holds the values macros expand to during one evaluation.
type macroEnv struct {
	sender, local, senderDomain string
	domain                      string // the current <domain>, changed by include and redirect
	helo                        string
	ip                          netip.Addr
	receiver                    string
	timestamp                   int64
	ptrFunc                     func() string // the validated PTR name, looked up only when used
}

// String writes m back in macro-string syntax.
func (m macroString) String() string {
	var b strings.Builder
	for _, tok := range m {
		switch tok.kind {
		case macroEscape:
			b.WriteString(map[string]string{"%": "%%", " ": "%_", "%20": "%-"}[tok.text])
		case macroLetter:
			l := tok.letter
			if tok.upper {
				l -= 'a' - 'A'
			}
			b.WriteString("%{" + string(l))
			if tok.digits > 0 {
				b.WriteString(strconv.Itoa(tok.digits))
			}
			if tok.reverse {
				b.WriteByte('r')
			}
			b.WriteString(tok.delims + "}")
		default:
			b.WriteString(tok.text)
		}
	}
	return b.String()
}

// usesIP reports whether m expands differently for different client addresses.
func (m macroString) usesIP() bool {
	for _, tok := range m {
		if tok.kind == macroLetter && strings.IndexByte("ipvc", tok.letter) >= 0 {
			return true
		}
	}
	return false
}

// expand produces the text of m in env.
func (m macroString) expand(env *macroEnv) string {
	var b strings.Builder
	for _, tok := range m {
		if tok.kind != macroLetter {
			b.WriteString(tok.text)
			continue
		}
		v := transform(env.value(tok.letter), tok)
		if tok.upper {
			v = urlEscape(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

func (env *macroEnv) value(letter byte) string {
	switch letter {
	case 's':
		return env.sender
	case 'l':
		return env.local
	case 'o':
		return env.senderDomain
	case 'd':
		return env.domain
	case 'i':
		return dottedIP(env.ip)
	case 'p':
		return env.ptrFunc()
	case 'v':
		if env.ip.Is4() {
			return "in-addr"
		}
		return "ip6"
	case 'h':
		return env.helo
	case 'c':
		return env.ip.String()
	case 'r':
		return cmp.Or(env.receiver, "unknown")
	case 't':
		return strconv.FormatInt(env.timestamp, 10)
	}
	return ""
}

// transform splits on the delimiters, reverses, keeps the right-hand parts and
// joins with dots (RFC 7208 7.3).
func transform(v string, tok macroToken) string {
	if tok.digits == 0 && !tok.reverse && (tok.delims == "" || tok.delims == ".") {
		return v
	}
	delims := cmp.Or(tok.delims, ".")
	parts := splitKeepEmpty(v, delims)
	if tok.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if tok.digits > 0 && tok.digits < len(parts) {
		parts = parts[len(parts)-tok.digits:]
	}
	return strings.Join(parts, ".")
}

// splitKeepEmpty splits on any of delims and keeps empty parts.
func splitKeepEmpty(v, delims string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(delims, v[i]) >= 0 {
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	return append(parts, v[start:])
}

// dottedIP is the "i" macro: dotted quad for IPv4, dot-separated upper-case
// nibbles for IPv6 (as in the RFC 7208 examples and the conformance suite).
func dottedIP(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	const hex = "0123456789ABCDEF"
	b16 := ip.As16()
	out := make([]byte, 0, 63)
	for i, c := range b16 {
		if i > 0 {
			out = append(out, '.')
		}
		out = append(out, hex[c>>4], '.', hex[c&0x0f])
	}
	return string(out)
}

// urlEscape escapes everything outside RFC 3986 "unreserved", as upper-case macro
// letters require.
func urlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}
