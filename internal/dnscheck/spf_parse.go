package dnscheck

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// errSPFSyntax marks record syntax errors; check_host() turns them into permerror.
var errSPFSyntax = errors.New("spf syntax error")

// spfVersion is the version tag that selects SPF records among a domain's TXT records.
const spfVersion = "v=spf1"

// IsSPFRecord reports whether a TXT record is an SPF version 1 record: "v=spf1"
// (any case) alone or followed by a space.
func IsSPFRecord(txt string) bool {
	n := len(spfVersion)
	return len(txt) >= n && strings.EqualFold(txt[:n], spfVersion) && (len(txt) == n || txt[n] == ' ')
}

// spfTerm is one mechanism of a record.
type spfTerm struct {
	raw       string
	qualifier byte   // '+', '-', '~' or '?'
	mech      string // all, include, a, mx, ptr, ip4, ip6, exists
	domain    macroString
	cidr4     int
	cidr6     int
	network   netip.Prefix
}

// spfRecord is a parsed and fully syntax-checked SPF record.
type spfRecord struct {
	terms    []spfTerm
	redirect macroString
	exp      macroString
}

// usesDNS is true for the terms that count against the 10-lookup limit.
func (t spfTerm) usesDNS() bool {
	switch t.mech {
	case "include", "a", "mx", "ptr", "exists":
		return true
	}
	return false
}

// parseSPF checks the whole record (RFC 7208 4.6: a syntax error anywhere is a
// permerror even if an earlier mechanism would match) and returns its terms.
func parseSPF(record string) (*spfRecord, error) {
	if !IsSPFRecord(record) {
		return nil, fmt.Errorf("%w: record does not start with %q", errSPFSyntax, spfVersion)
	}
	for i := 0; i < len(record); i++ {
		if c := record[i]; c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("%w: byte 0x%02x is not printable ASCII", errSPFSyntax, c)
		}
	}
	rec := &spfRecord{}
	for _, field := range strings.Split(record[len(spfVersion):], " ") {
		if field == "" {
			continue
		}
		if err := rec.addTerm(field); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", errSPFSyntax, field, err)
		}
	}
	return rec, nil
}

func (r *spfRecord) addTerm(field string) error {
	if isModifier(field) {
		return r.addModifier(field)
	}
	t, err := parseMechanism(field)
	if err != nil {
		return err
	}
	r.terms = append(r.terms, t)
	return nil
}

// isModifier matches name "=" with name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
func isModifier(field string) bool {
	name, _, ok := strings.Cut(field, "=")
	if !ok || name == "" || !isAlpha(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func (r *spfRecord) addModifier(field string) error {
	name, value, _ := strings.Cut(field, "=")
	switch strings.ToLower(name) {
	case "redirect":
		return setOnce(&r.redirect, value, "redirect")
	case "exp":
		return setOnce(&r.exp, value, "exp")
	}
	_, err := parseMacroString(value, false) // unknown modifiers are ignored but must parse
	return err
}

func setOnce(dst *macroString, value, name string) error {
	if *dst != nil {
		return fmt.Errorf("%s= appears more than once", name)
	}
	ms, err := parseDomainSpec(value)
	if err != nil {
		return err
	}
	*dst = ms
	return nil
}

// parseDomainSpec parses a non-empty domain-spec and checks its domain-end.
func parseDomainSpec(s string) (macroString, error) {
	if s == "" {
		return nil, errors.New("empty domain")
	}
	ms, err := parseMacroString(s, false)
	if err != nil {
		return nil, err
	}
	if !ms.endsAsDomain() {
		return nil, fmt.Errorf("%q does not end in a valid top-level label or macro", s)
	}
	return ms, nil
}

func parseMechanism(field string) (spfTerm, error) {
	t := spfTerm{raw: field, qualifier: '+'}
	if strings.IndexByte("+-~?", field[0]) >= 0 {
		t.qualifier, field = field[0], field[1:]
	}
	end := strings.IndexAny(field, ":/")
	if end < 0 {
		end = len(field)
	}
	t.mech = strings.ToLower(field[:end])
	rest := field[end:]
	var err error
	switch t.mech {
	case "all":
		if rest != "" {
			err = errors.New("all takes no argument")
		}
	case "include", "exists":
		t.domain, err = parseRequiredDomain(rest)
	case "ptr":
		if rest != "" {
			t.domain, err = parseRequiredDomain(rest)
		}
	case "a", "mx":
		err = t.parseDomainAndCIDR(rest)
	case "ip4":
		t.network, err = parseIP4Network(rest)
	case "ip6":
		t.network, err = parseIP6Network(rest)
	default:
		err = fmt.Errorf("unknown mechanism %q", t.mech)
	}
	return t, err
}

func parseRequiredDomain(rest string) (macroString, error) {
	if !strings.HasPrefix(rest, ":") {
		return nil, errors.New("a domain is required")
	}
	return parseDomainSpec(rest[1:])
}

// parseDomainAndCIDR parses [ ":" domain-spec ] [ dual-cidr-length ] of a and mx.
func (t *spfTerm) parseDomainAndCIDR(rest string) error {
	spec, hasDomain := strings.CutPrefix(rest, ":")
	spec, c4, c6 := splitDualCIDR(spec)
	var err error
	switch {
	case hasDomain:
		if t.domain, err = parseDomainSpec(spec); err != nil {
			return err
		}
	case spec != "":
		return fmt.Errorf("invalid CIDR length %q", rest)
	}
	if t.cidr4, err = parseCIDR(c4, 32); err != nil {
		return err
	}
	t.cidr6, err = parseCIDR(c6, 128)
	return err
}

// splitDualCIDR takes a trailing [ "/" ip4-cidr ] [ "//" ip6-cidr ] off s; a
// domain-spec may itself contain slashes, so only digit-only suffixes count.
func splitDualCIDR(s string) (rest, c4, c6 string) {
	if i := strings.LastIndex(s, "//"); i >= 0 && isDigits(s[i+2:]) {
		s, c6 = s[:i], s[i+2:]
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 && isDigits(s[i+1:]) {
		s, c4 = s[:i], s[i+1:]
	}
	return s, c4, c6
}

// parseCIDR reads a prefix length; empty means the full length. Leading zeros are
// refused like they are in ip4-network.
func parseCIDR(s string, max int) (int, error) {
	if s == "" {
		return max, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || !isDigits(s) || (s[0] == '0' && s != "0") || n > max {
		return 0, fmt.Errorf("invalid CIDR length /%s", s)
	}
	return n, nil
}

func parseIP4Network(rest string) (netip.Prefix, error) {
	addr, cidr, err := splitNetwork(rest, "ip4")
	if err != nil {
		return netip.Prefix{}, err
	}
	parts := strings.Split(addr, ".")
	if len(parts) != 4 {
		return netip.Prefix{}, fmt.Errorf("invalid ip4 address %q", addr)
	}
	for _, p := range parts {
		if !isQnum(p) {
			return netip.Prefix{}, fmt.Errorf("invalid ip4 address %q", addr)
		}
	}
	return makePrefix(addr, cidr, 32)
}

// isQnum accepts 0-255 without leading zeros, as ip4-network requires.
func isQnum(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && isDigits(s) && len(s) <= 3 && (s[0] != '0' || s == "0") && n <= 255
}

func parseIP6Network(rest string) (netip.Prefix, error) {
	addr, cidr, err := splitNetwork(rest, "ip6")
	if err != nil {
		return netip.Prefix{}, err
	}
	if !strings.Contains(addr, ":") || strings.ContainsAny(addr, "%[]") {
		return netip.Prefix{}, fmt.Errorf("invalid ip6 address %q", addr)
	}
	return makePrefix(addr, cidr, 128)
}

// splitNetwork splits ":" address [ "/" digits ].
func splitNetwork(rest, mech string) (addr, cidr string, err error) {
	body, ok := strings.CutPrefix(rest, ":")
	if !ok || body == "" {
		return "", "", fmt.Errorf("%s needs an address", mech)
	}
	addr, cidr, hasCIDR := strings.Cut(body, "/")
	if hasCIDR && !isDigits(cidr) {
		return "", "", fmt.Errorf("invalid %s network %q", mech, body)
	}
	return addr, cidr, nil
}

func makePrefix(addr, cidr string, max int) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", addr)
	}
	bits, err := parseCIDR(cidr, max)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, bits).Masked(), nil
}
