package dnscheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// soa starts a zone file for Knot: SOA, NS and glue.
func soa(origin string) string {
	return "$ORIGIN " + origin + ".\n$TTL 300\n@ IN SOA ns." + origin + ". hostmaster." + origin + ". 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n"
}

// knotExample serves receiverZone's example.com key variants from Knot DNS, plus a
// delegation of _domainkey.deleg.example.com to a server elsewhere.
func knotExample(t *testing.T) *dnstest.Knot {
	t.Helper()
	var zone strings.Builder
	zone.WriteString(soa("example.com"))
	for _, line := range strings.Split(receiverZone, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], "._domainkey.example.com.") {
			zone.WriteString(line + "\n")
		}
	}
	zone.WriteString("_domainkey.deleg IN NS ns.dkim-host.example.net.\n")
	return dnstest.NewKnot(t, map[string]string{"example.com": zone.String()})
}

func TestCheckDKIMAgainstKnot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	knot := knotExample(t)
	c := NewChecker(NewResolver(&ResolverConfig{Servers: []string{knot.Addr}, Timeout: time.Second, Attempts: 1}))
	tests := []struct {
		name, selector, alg, key, code string
	}{
		{"KeyTypeMismatch", "ktype", DKIMKeyRSA, dkimKey, "dkim.key_type_mismatch"},
		{"ServiceNotEmail", "tlsrpt", DKIMKeyRSA, dkimKey, "dkim.service_not_email"},
		{"HashNotAllowed", "sha1", DKIMKeyRSA, dkimKey, "dkim.hash_not_allowed"},
		{"Testing", "testing", DKIMKeyRSA, dkimKey, "dkim.testing"},
		{"SplitStringsPass", "norsa", DKIMKeyRSA, dkimKey, "dkim.ok"},
		{"Ed25519Pass", "ed", DKIMKeyEd25519, ed25519Key, "dkim.ok"},
		{"Missing", "none", DKIMKeyRSA, dkimKey, "dkim.record_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := c.CheckDKIMKey(ctx, "example.com", DKIMKey{Selector: tt.selector, Algorithm: tt.alg, PublicKey: tt.key})
			require.Equal(t, tt.code, res.Code, res.Message)
		})
	}
}

// TestDelegatedDomainKey: a _domainkey sub-zone delegated to another server is a
// referral when the configured server is authoritative (never "record missing"), and
// resolves through a real recursive resolver.
func TestDelegatedDomainKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	knot := knotExample(t)
	child := dnstest.NewServer(t, "sw1._domainkey.deleg.example.com. 300 IN TXT \"v=DKIM1; k=rsa; p="+dkimKey+"\"\n")

	t.Run("AuthoritativeServerGivesNotRecursive", func(t *testing.T) {
		t.Parallel()
		r := NewResolver(&ResolverConfig{Servers: []string{knot.Addr}, Timeout: time.Second, Attempts: 1})
		res := NewChecker(r).CheckDKIM(ctx, "sw1", "deleg.example.com", dkimKey)
		require.Equal(t, StatusTempError, res.Status, res.Message)
		require.Equal(t, "dns.not_recursive", res.Code)
		require.ErrorContains(t, r.CheckRecursion(ctx), "recursion not available")
	})
	t.Run("RecursiveResolverFollowsDelegation", func(t *testing.T) {
		t.Parallel()
		ub := dnstest.NewUnbound(t, map[string]string{"example.com": knot.Addr, "_domainkey.deleg.example.com": child.Addr()})
		r := NewResolver(&ResolverConfig{Servers: []string{ub.Addr}, Timeout: 2 * time.Second, Attempts: 1})
		res := NewChecker(r).CheckDKIM(ctx, "sw1", "deleg.example.com", dkimKey)
		require.Equal(t, "dkim.ok", res.Code, res.Message)
		require.NoError(t, r.CheckRecursion(ctx))
	})
}
