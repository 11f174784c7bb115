package sendingdomain

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

func TestCheckSender(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	pending := b.create(t, "pending.example")
	d := b.create(t, "bücher.example")
	b.serve(t, d, allRecords)
	d, _ = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)

	t.Run("AnySpellingOfAVerifiedDomain", func(t *testing.T) {
		for _, name := range []string{"bücher.example", "XN--BCHER-KVA.example", "Bücher.Example."} {
			got, err := b.svc.CheckSender(b.ctx, b.tenantID, name, true)
			require.NoError(t, err, name)
			require.Equal(t, d.ID, got.ID)
		}
	})
	t.Run("SubdomainsAreNotCovered", func(t *testing.T) {
		_, err := b.svc.CheckSender(b.ctx, b.tenantID, "mail.bücher.example", false)
		var se *SenderError
		require.ErrorAs(t, err, &se)
		require.Equal(t, RuleUnknown, se.Rule)
		require.Equal(t, "mail.xn--bcher-kva.example", se.Domain)
		require.Contains(t, se.Message, "POST /v1/domains")
	})
	t.Run("PendingSaysWhatToDo", func(t *testing.T) {
		_, err := b.svc.CheckSender(b.ctx, b.tenantID, "pending.example", false)
		var se *SenderError
		require.ErrorAs(t, err, &se)
		require.Equal(t, RulePending, se.Rule)
		require.Equal(t, "domain pending.example is pending verification: publish the records from GET /v1/domains/"+pending.ID+
			"/records and check again (POST /v1/domains/"+pending.ID+"/check)", se.Message)
	})
	t.Run("Garbage", func(t *testing.T) {
		_, err := b.svc.CheckSender(b.ctx, b.tenantID, "not a domain", false)
		require.True(t, IsSenderError(err))
	})
	t.Run("SenderAllowedGivesTheSameAnswers", func(t *testing.T) {
		for _, name := range []string{"bücher.example", "XN--BCHER-KVA.example", "mail.bücher.example", "pending.example", "not a domain"} {
			for _, spf := range []bool{false, true} {
				_, want := b.svc.CheckSender(b.ctx, b.tenantID, name, spf)
				require.Equal(t, want, b.svc.SenderAllowed(b.ctx, b.tenantID, name, spf), "%s (SPF required: %v)", name, spf)
			}
		}
	})
}

func TestManualCheckRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "example.com")
	b.serve(t, d, allRecords)

	got, chk, err := b.svc.Check(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err)
	require.Equal(t, TriggerManual, chk.Trigger)
	require.Equal(t, StatusVerified, got.Status)

	b.clock.Advance(4 * time.Second)
	_, _, err = b.svc.Check(b.ctx, b.tenantID, d.ID)
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 6*time.Second, rl.RetryAfter)

	b.clock.Advance(6 * time.Second)
	_, _, err = b.svc.Check(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err)

	_, _, err = b.svc.RunCheck(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err, "scheduled checks are not rate limited")
}

// TestDKIMSigners signs with the domain's key and verifies the signature against the
// published record, as a receiver would.
func TestDKIMSigners(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "example.com")
	b.serve(t, d, allRecords)

	signers, err := b.svc.DKIMSigners(b.ctx, b.tenantID, "example.com")
	require.NoError(t, err)
	require.Len(t, signers, 1)
	require.Equal(t, "sw1", signers[0].Selector)
	msg := "From: Acme <noreply@example.com>\r\nTo: user@customer.example\r\nSubject: Hello\r\n\r\nHi.\r\n"
	signed, err := delivery.SignDKIM([]byte(msg), signers...)
	require.NoError(t, err)

	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{b.dns.Addr()}})
	lookup := func(name string) ([]string, error) {
		ans, err := resolver.Lookup(context.Background(), name, dns.TypeTXT)
		if err != nil {
			return nil, err
		}
		return ans.TXT(), nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: lookup})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.NoError(t, vs[0].Err)
	require.Equal(t, "example.com", vs[0].Domain)

	_, err = b.svc.DKIMSigners(b.ctx, b.tenantID, "unknown.example")
	require.True(t, IsNotFound(err))
	require.False(t, strings.Contains(string(signed), "PRIVATE"))
}
