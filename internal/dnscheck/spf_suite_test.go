package dnscheck

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// suiteFile is the RFC 7208 conformance suite (openspf/pyspf rfc7208-tests.yml).
const suiteFile = "testdata/rfc7208-tests.yml"

// suiteDefaultExplanation stands for "no exp= explanation" the way the suite's
// reference driver does it: expected explanation "DEFAULT".
const suiteDefaultExplanation = "DEFAULT"

type suiteScenario struct {
	Description string                 `yaml:"description"`
	Tests       map[string]suiteTest   `yaml:"tests"`
	ZoneData    map[string][]yaml.Node `yaml:"zonedata"`
}

type suiteTest struct {
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	MailFrom    string    `yaml:"mailfrom"`
	Result      resultSet `yaml:"result"`
	Explanation *string   `yaml:"explanation"`
}

// resultSet is one accepted result or a list of them.
type resultSet []string

func (r *resultSet) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = resultSet{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*r = list
	return nil
}

func loadSuite(t *testing.T) []suiteScenario {
	t.Helper()
	raw, err := os.ReadFile(suiteFile)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var out []suiteScenario
	for {
		var s suiteScenario
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		if s.Tests != nil {
			out = append(out, s)
		}
	}
}

// suiteZone is a scenario's zone data turned into records for dnstest, following
// the reference driver: SPF entries also become TXT records unless the name has
// TXT entries of its own, "TXT: NONE" means no TXT, and TIMEOUT makes queries for
// types without records go unanswered.
type suiteZone struct {
	rrs      []dns.RR
	timeouts map[string][]uint16
}

func buildSuiteZone(t *testing.T, data map[string][]yaml.Node) suiteZone {
	t.Helper()
	z := suiteZone{timeouts: map[string][]uint16{}}
	for name, entries := range data {
		var rrs, spf []dns.RR
		hasTXT, timeout := false, false
		for _, e := range entries {
			if e.Kind == yaml.ScalarNode && e.Value == "TIMEOUT" {
				timeout = true
				continue
			}
			require.Equal(t, yaml.MappingNode, e.Kind, "zone entry of %s", name)
			typ, val := e.Content[0].Value, e.Content[1]
			switch typ {
			case "TXT":
				hasTXT = true
				if val.Value != "NONE" {
					rrs = append(rrs, suiteTXT(t, name, val))
				}
			case "SPF":
				spf = append(spf, suiteTXT(t, name, val))
			default:
				rrs = append(rrs, suiteRR(t, name, typ, val))
			}
		}
		if !hasTXT {
			rrs = append(rrs, spf...)
		}
		z.rrs = append(z.rrs, rrs...)
		if timeout {
			z.timeouts[name] = missingTypes(rrs)
		}
	}
	return z
}

func missingTypes(rrs []dns.RR) []uint16 {
	var out []uint16
	for _, qt := range []uint16{dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypePTR} {
		if !slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == qt }) {
			out = append(out, qt)
		}
	}
	return out
}

func suiteHeader(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: wireName(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: 300}
}

func suiteTXT(t *testing.T, name string, val *yaml.Node) dns.RR {
	t.Helper()
	var parts []string
	if val.Kind == yaml.SequenceNode {
		require.NoError(t, val.Decode(&parts))
	} else {
		parts = []string{val.Value}
	}
	txt := &dns.TXT{Hdr: suiteHeader(name, dns.TypeTXT), Txt: []string{}}
	for _, p := range parts {
		txt.Txt = append(txt.Txt, dnstest.EscapeTXT(p))
	}
	return txt
}

func suiteRR(t *testing.T, name, typ string, val *yaml.Node) dns.RR {
	t.Helper()
	switch typ {
	case "A":
		return &dns.A{Hdr: suiteHeader(name, dns.TypeA), A: net.ParseIP(val.Value).To4()}
	case "AAAA":
		return &dns.AAAA{Hdr: suiteHeader(name, dns.TypeAAAA), AAAA: net.ParseIP(val.Value)}
	case "PTR":
		return &dns.PTR{Hdr: suiteHeader(name, dns.TypePTR), Ptr: wireName(val.Value)}
	case "CNAME":
		return &dns.CNAME{Hdr: suiteHeader(name, dns.TypeCNAME), Target: wireName(val.Value)}
	case "MX":
		var mx []string
		require.NoError(t, val.Decode(&mx))
		pref, err := strconv.Atoi(mx[0])
		require.NoError(t, err)
		return &dns.MX{Hdr: suiteHeader(name, dns.TypeMX), Preference: uint16(pref), Mx: wireName(mx[1])}
	}
	t.Fatalf("unsupported record type %s at %s", typ, name)
	return nil
}

// TestSPFConformanceSuite runs every scenario of the RFC 7208 suite against a
// dnstest server over real UDP/TCP. Where the suite accepts several results, any
// of them passes.
func TestSPFConformanceSuite(t *testing.T) {
	t.Parallel()
	var total, passed atomic.Int64
	t.Cleanup(func() { t.Logf("RFC 7208 suite: %d of %d tests pass", passed.Load(), total.Load()) })
	for _, sc := range loadSuite(t) {
		t.Run(camelCase(sc.Description), func(t *testing.T) {
			t.Parallel()
			eval := newSuiteEvaluator(t, sc)
			for id, tc := range sc.Tests {
				total.Add(1)
				t.Run(id, func(t *testing.T) {
					t.Parallel()
					runSuiteTest(t, eval, tc)
					if !t.Failed() {
						passed.Add(1)
					}
				})
			}
		})
	}
}

func newSuiteEvaluator(t *testing.T, sc suiteScenario) *SPFEvaluator {
	zone := buildSuiteZone(t, sc.ZoneData)
	srv := dnstest.NewServer(t, "")
	srv.AddRR(zone.rrs...)
	for name, types := range zone.timeouts {
		srv.Drop(wireName(name), types...)
	}
	res := NewResolver(&ResolverConfig{Servers: []string{srv.Addr()}, Timeout: 400 * time.Millisecond, Attempts: 1})
	eval := NewSPFEvaluator(res)
	eval.DefaultExplanation = suiteDefaultExplanation
	return eval
}

func runSuiteTest(t *testing.T, eval *SPFEvaluator, tc suiteTest) {
	ip := net.ParseIP(tc.Host)
	require.NotNil(t, ip, "host %q", tc.Host)
	res := eval.CheckHost(context.Background(), ip, "", tc.MailFrom, tc.Helo)
	require.Contains(t, []string(tc.Result), string(res.Result), "problem: %s; trace: %+v", res.Message, res.Trace)
	if tc.Explanation != nil {
		require.Equal(t, *tc.Explanation, res.Explanation)
	}
}

// camelCase turns a scenario description into a subtest name.
func camelCase(s string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isAlnum(byte(r)) }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}
