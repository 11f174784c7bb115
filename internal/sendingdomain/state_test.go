package sendingdomain

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	res := func(check string, st dnscheck.CheckStatus) dnscheck.CheckResult {
		return dnscheck.CheckResult{Check: check, Status: st, Code: check + "." + string(st)}
	}
	pass, fail, temp := dnscheck.StatusPass, dnscheck.StatusFail, dnscheck.StatusTempError
	tests := []struct {
		name    string
		results []dnscheck.CheckResult
		outcome string
		cause   string
	}{
		{"AllRequiredPass", []dnscheck.CheckResult{res(CheckOwnership, pass), res(CheckSPF, fail), res(CheckDKIM, pass), res(CheckDMARC, fail)}, OutcomePass, ""},
		{"FailWinsOverTemperror", []dnscheck.CheckResult{res(CheckOwnership, temp), res(CheckDKIM, fail)}, OutcomeFail, "dkim.fail"},
		{"TemperrorWithoutFailure", []dnscheck.CheckResult{res(CheckOwnership, pass), res(CheckDKIM, temp)}, OutcomeTempError, "dkim.temperror"},
		{"SPFTemperrorIsNotRequired", []dnscheck.CheckResult{res(CheckOwnership, pass), res(CheckSPF, temp), res(CheckDKIM, pass)}, OutcomePass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := judge(tt.results)
			require.Equal(t, tt.outcome, v.outcome)
			if tt.cause != "" {
				require.Equal(t, tt.cause, v.cause.Code)
			}
		})
	}
}

func TestStateMachine(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	t0 := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	fail := verdict{outcome: OutcomeFail, cause: &dnscheck.CheckResult{Code: "ownership.token_missing", Message: "No TXT record."}}
	pass, temp := verdict{outcome: OutcomePass}, verdict{outcome: OutcomeTempError, cause: &dnscheck.CheckResult{Code: "dns.timeout"}}

	t.Run("PendingFailsStayPending", func(t *testing.T) {
		st, tr := c.next(state{Status: StatusPending}, fail, t0)
		require.Equal(t, StatusPending, st.Status)
		require.Zero(t, st.Failures)
		require.Nil(t, tr)
	})
	t.Run("RevocationNeedsBothTimeAndChecks", func(t *testing.T) {
		st, tr := c.next(state{Status: StatusVerified, VerifiedAt: &t0}, fail, t0)
		require.Equal(t, StatusAtRisk, tr.To)
		require.Equal(t, t0.Add(72*time.Hour), *st.RevokesAt)
		// Many failures early: not yet.
		for i := range 10 {
			st, tr = c.next(st, fail, t0.Add(time.Duration(i+1)*time.Hour))
			require.Nil(t, tr)
		}
		require.Equal(t, StatusAtRisk, st.Status)
		require.Equal(t, 11, st.Failures)
		st, tr = c.next(st, fail, t0.Add(72*time.Hour))
		require.Equal(t, StatusRevoked, st.Status)
		require.Equal(t, "ownership.token_missing", tr.Code)
		require.Nil(t, st.RevokesAt)

		// Time passed but too few checks: not yet.
		st, _ = c.next(state{Status: StatusVerified}, fail, t0)
		st, tr = c.next(st, fail, t0.Add(200*time.Hour))
		require.Nil(t, tr)
		require.Equal(t, 2, st.Failures)
		st, tr = c.next(st, fail, t0.Add(201*time.Hour))
		require.Equal(t, StatusRevoked, tr.To)
	})
	t.Run("TemperrorChangesNothing", func(t *testing.T) {
		first := t0
		revokes := t0.Add(72 * time.Hour)
		cur := state{Status: StatusAtRisk, FirstFailedAt: &first, RevokesAt: &revokes, Failures: 2}
		st, tr := c.next(cur, temp, t0.Add(500*time.Hour))
		require.Equal(t, cur, st)
		require.Nil(t, tr)
	})
	t.Run("PassRestores", func(t *testing.T) {
		for _, from := range []string{StatusAtRisk, StatusRevoked} {
			first := t0
			st, tr := c.next(state{Status: from, FirstFailedAt: &first, Failures: 4}, pass, t0.Add(time.Hour))
			require.Equal(t, StatusVerified, st.Status)
			require.Equal(t, "domain.restored", tr.Code)
			require.Zero(t, st.Failures)
			require.Nil(t, st.FirstFailedAt)
		}
		st, tr := c.next(state{Status: StatusPending}, pass, t0)
		require.Equal(t, "domain.verified", tr.Code)
		require.Equal(t, t0, *st.VerifiedAt)
	})
	t.Run("Cadence", func(t *testing.T) {
		require.Equal(t, t0.Add(5*time.Minute), c.nextCheck(StatusPending, t0, t0))
		require.Equal(t, t0.Add(25*time.Hour), c.nextCheck(StatusPending, t0, t0.Add(24*time.Hour)))
		require.Equal(t, t0.Add(2*time.Hour), c.nextCheck(StatusVerified, t0, t0.Add(time.Hour)))
		require.Equal(t, t0.Add(2*time.Hour), c.nextCheck(StatusRevoked, t0, t0.Add(time.Hour)))
	})
}

// TestGracePeriod drives the state machine over DNS: a verified domain whose token is
// removed goes at_risk, and is revoked only after the grace period and enough failed
// checks; publishing the token again restores it at once.
func TestGracePeriod(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "example.com")
	b.serve(t, d, allRecords)
	d, chk := b.check(t, d)
	require.Equal(t, StatusVerified, d.Status, "%+v", chk.Results)
	require.Equal(t, b.clock.Now(), *d.VerifiedAt)
	require.Equal(t, b.clock.Now().Add(time.Hour), d.NextCheckAt, "verified domains are checked hourly")
	_, err := b.svc.CheckSender(b.ctx, b.tenantID, "example.com", true)
	require.NoError(t, err)

	// The token is removed.
	b.serve(t, d, []string{CheckSPF, CheckDKIM, CheckDMARC})
	b.clock.Advance(time.Hour)
	t0 := b.clock.Now()
	d, chk = b.check(t, d)
	require.Equal(t, StatusAtRisk, d.Status)
	require.Equal(t, OutcomeFail, chk.Outcome)
	require.Equal(t, "ownership.token_missing", resultOf(t, chk.Results, CheckOwnership).Code)
	require.Equal(t, t0, *d.FirstFailedAt)
	require.Equal(t, t0.Add(72*time.Hour), *d.RevokesAt)
	require.Equal(t, 1, d.ConsecutiveFailures)
	require.True(t, d.CanSend(), "at_risk still sends")
	_, err = b.svc.CheckSender(b.ctx, b.tenantID, "example.com", false)
	require.NoError(t, err)

	for range 3 {
		b.clock.Advance(time.Hour)
		d, _ = b.check(t, d)
	}
	require.Equal(t, StatusAtRisk, d.Status, "four failures, but the grace period is not over")
	require.Equal(t, 4, d.ConsecutiveFailures)

	b.clock.Advance(72*time.Hour - 3*time.Hour - time.Second)
	d, _ = b.check(t, d)
	require.Equal(t, StatusAtRisk, d.Status, "one second before revokes_at")

	b.clock.Advance(time.Second)
	d, _ = b.check(t, d)
	require.Equal(t, StatusRevoked, d.Status)
	require.False(t, d.CanSend())
	_, err = b.svc.CheckSender(b.ctx, b.tenantID, "example.com", false)
	require.Equal(t, err, b.svc.SenderAllowed(b.ctx, b.tenantID, "example.com", false), "the short answer is the same refusal")
	var se *SenderError
	require.ErrorAs(t, err, &se)
	require.Equal(t, RuleRevoked, se.Rule)
	require.Contains(t, se.Message, "ownership.token_missing")
	require.Contains(t, se.Message, "/v1/domains/"+d.ID+"/records")

	// The token comes back.
	b.serve(t, d, allRecords)
	b.clock.Advance(time.Hour)
	d, chk = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)
	require.Equal(t, StatusRevoked, chk.StatusBefore)
	require.Zero(t, d.ConsecutiveFailures)
	require.Nil(t, d.FirstFailedAt)
	require.Nil(t, d.RevokesAt)

	es := b.events(t, d)
	var trail []string
	for i := len(es) - 1; i >= 0; i-- {
		trail = append(trail, es[i].ToStatus+":"+es[i].Code)
	}
	require.Equal(t, []string{"pending:", "verified:domain.verified", "at_risk:ownership.token_missing",
		"revoked:ownership.token_missing", "verified:domain.restored"}, trail)
	require.Contains(t, es[2].Reason, "No TXT record sendwerk-verification=", "the reason says what is missing")
	require.Contains(t, es[2].Reason, "keeps its send rights until "+t0.Add(72*time.Hour).Format(time.RFC3339))

	checks, err := b.svc.ListChecks(b.ctx, b.tenantID, d.ID, "", 100)
	require.NoError(t, err)
	require.Len(t, checks, 8)
	require.Equal(t, StatusVerified, checks[0].StatusAfter, "newest first")
	page2, err := b.svc.ListChecks(b.ctx, b.tenantID, d.ID, checks[2].ID, 2)
	require.NoError(t, err)
	require.Equal(t, []string{checks[3].ID, checks[4].ID}, []string{page2[0].ID, page2[1].ID})
}

func TestRestoredBeforeRevocation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "example.com")
	b.serve(t, d, allRecords)
	d, _ = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)

	// A different DKIM key is published.
	b.serve(t, d, []string{CheckOwnership, CheckSPF}, `sw1._domainkey.example.com. 300 IN TXT "v=DKIM1; k=rsa; p=AAAAB3NzaC1yc2E="`)
	b.clock.Advance(time.Hour)
	d, chk := b.check(t, d)
	require.Equal(t, StatusAtRisk, d.Status)
	require.Equal(t, "dkim.key_mismatch", resultOf(t, chk.Results, CheckDKIM).Code)

	b.serve(t, d, allRecords)
	b.clock.Advance(time.Hour)
	d, _ = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status)
	require.Zero(t, d.ConsecutiveFailures)
}

// TestDNSOutage: DNS failing for longer than the grace period costs nothing.
func TestDNSOutage(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"ServFail", "Timeout", "Refused"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			d := b.create(t, "example.com")
			b.serve(t, d, allRecords)
			d, _ = b.check(t, d)
			require.Equal(t, StatusVerified, d.Status)
			verifiedAt := *d.VerifiedAt
			switch fault {
			case "ServFail":
				b.outage(d, servfail(b.dns))
			case "Timeout":
				b.outage(d, func(name string) { b.dns.Drop(name) })
			case "Refused":
				b.outage(d, func(name string) { b.dns.SetRcode(name, dns.RcodeRefused) })
			}
			for range 5 {
				b.clock.Advance(20 * time.Hour)
				var chk *Check
				d, chk = b.check(t, d)
				require.Equal(t, OutcomeTempError, chk.Outcome)
				require.Equal(t, dnscheck.StatusTempError, resultOf(t, chk.Results, CheckOwnership).Status)
				require.True(t, strings.HasPrefix(resultOf(t, chk.Results, CheckDKIM).Code, "dns."))
			}
			require.Equal(t, StatusVerified, d.Status, "100 hours of DNS outage")
			require.Zero(t, d.ConsecutiveFailures)
			require.Equal(t, verifiedAt, *d.VerifiedAt)
			require.Equal(t, "pass", d.SPFStatus, "a temperror keeps the last conclusive SPF result")
			_, err := b.svc.CheckSender(b.ctx, b.tenantID, "example.com", true)
			require.NoError(t, err)
			require.Len(t, b.events(t, d), 2, "created and verified only")
		})
	}

	t.Run("DuringGraceItNeitherCountsNorResets", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, allRecords)
		d, _ = b.check(t, d)
		b.serve(t, d, []string{CheckSPF, CheckDKIM})
		b.clock.Advance(time.Hour)
		d, _ = b.check(t, d)
		require.Equal(t, StatusAtRisk, d.Status)

		b.outage(d, servfail(b.dns))
		for range 4 {
			b.clock.Advance(30 * time.Hour)
			d, _ = b.check(t, d)
		}
		require.Equal(t, StatusAtRisk, d.Status, "past revokes_at, but DNS never said the token is missing again")
		require.Equal(t, 1, d.ConsecutiveFailures)

		b.clearOutage(d)
		d, _ = b.check(t, d)
		require.Equal(t, 2, d.ConsecutiveFailures)
		require.Equal(t, StatusAtRisk, d.Status)
		d, _ = b.check(t, d)
		require.Equal(t, StatusRevoked, d.Status)
	})
}

func TestDKIMPublishing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra func(d *Domain, value string) []string
		code  string
	}{
		{"CNAMEToProvider", func(d *Domain, value string) []string {
			return []string{
				"sw1._domainkey.example.com. 300 IN CNAME sw1.example-com.keys.provider.test.",
				"sw1.example-com.keys.provider.test. 300 IN TXT " + txtStrings(value),
			}
		}, "dkim.ok"},
		{"DelegatedDomainkeyWithCNAMEChain", func(d *Domain, value string) []string {
			return []string{
				"_domainkey.example.com. 300 IN NS ns1.provider.test.",
				"sw1._domainkey.example.com. 300 IN CNAME sw1.customer.dkim.provider.test.",
				"sw1.customer.dkim.provider.test. 300 IN CNAME k1.keys.provider.test.",
				"k1.keys.provider.test. 300 IN TXT " + txtStrings(value),
			}
		}, "dkim.ok"},
		{"WhitespaceInKey", func(d *Domain, value string) []string {
			spaced := strings.Replace(value, "p=", "p= ", 1)
			return []string{"sw1._domainkey.example.com. 300 IN TXT " + txtStrings(spaced[:100]+" \t"+spaced[100:])}
		}, "dkim.ok"},
		{"RevokedKey", func(*Domain, string) []string {
			return []string{`sw1._domainkey.example.com. 300 IN TXT "v=DKIM1; k=rsa; p="`}
		}, "dkim.key_revoked"},
		{"Missing", func(*Domain, string) []string { return nil }, "dkim.record_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			d := b.create(t, "example.com")
			b.serve(t, d, []string{CheckOwnership}, tt.extra(d, "v=DKIM1; k=rsa; p="+d.DKIMPublicKey)...)
			d, chk := b.check(t, d)
			r := resultOf(t, chk.Results, CheckDKIM)
			require.Equal(t, tt.code, r.Code, r.Message)
			want := StatusPending
			if tt.code == "dkim.ok" {
				want = StatusVerified
			}
			require.Equal(t, want, d.Status)
		})
	}
}

// TestSPFScenarios runs the SPF check through the service: SPF is evaluated (RFC 7208
// check_host), never string-matched; it never changes the domain's status, but gates the
// platform connectors.
func TestSPFScenarios(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		zone   []string
		status dnscheck.CheckStatus
		code   string
	}{
		{"NestedIncludes", []string{
			`example.com. 300 IN TXT "v=spf1 include:_spf.example.com ~all"`,
			`_spf.example.com. 300 IN TXT "v=spf1 include:corp.example.com include:_spf.platform.test -all"`,
			`corp.example.com. 300 IN TXT "v=spf1 ip4:203.0.113.0/24 -all"`,
		}, dnscheck.StatusPass, "spf.ok"},
		{"Redirect", []string{
			`example.com. 300 IN TXT "v=spf1 redirect=_spf.example.com"`,
			`_spf.example.com. 300 IN TXT "v=spf1 include:_spf.platform.test -all"`,
		}, dnscheck.StatusPass, "spf.ok"},
		{"HostedSPFWithMacros", []string{
			`example.com. 300 IN TXT "v=spf1 exists:%{i}._ip.%{d} -all"`,
			`192.0.2.10._ip.example.com. 300 IN A 127.0.0.2`,
		}, dnscheck.StatusPass, "spf.ok"},
		{"PlusAll", []string{`example.com. 300 IN TXT "v=spf1 +all"`}, dnscheck.StatusPass, "spf.allows_all"},
		{"TooManyLookups", []string{
			`example.com. 300 IN TXT "v=spf1 a mx include:a.example.com include:b.example.com include:_spf.platform.test -all"`,
			`a.example.com. 300 IN TXT "v=spf1 a mx ptr exists:x.example.com -all"`,
			`b.example.com. 300 IN TXT "v=spf1 a mx a:c.example.com -all"`,
		}, dnscheck.StatusFail, "spf.too_many_lookups"},
		{"TwoRecords", []string{
			`example.com. 300 IN TXT "v=spf1 include:_spf.platform.test -all"`,
			`example.com. 300 IN TXT "v=spf1 mx -all"`,
		}, dnscheck.StatusFail, "spf.multiple_records"},
		{"VoidLookups", []string{
			`example.com. 300 IN TXT "v=spf1 a:gone1.example.com a:gone2.example.com a:gone3.example.com include:_spf.platform.test -all"`,
		}, dnscheck.StatusFail, "spf.void_lookups"},
		{"IncludeMissing", []string{`example.com. 300 IN TXT "v=spf1 mx -all"`}, dnscheck.StatusFail, "spf.include_missing"},
		{"RecordMissing", nil, dnscheck.StatusFail, "spf.record_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			d := b.create(t, "example.com")
			b.serve(t, d, []string{CheckOwnership, CheckDKIM}, tt.zone...)
			d, chk := b.check(t, d)
			r := resultOf(t, chk.Results, CheckSPF)
			require.Equal(t, tt.status, r.Status, r.Message)
			require.Equal(t, tt.code, r.Code, r.Message)
			require.Equal(t, StatusVerified, d.Status, "SPF does not decide the status")
			require.Equal(t, string(tt.status), d.SPFStatus)
			_, err := b.svc.CheckSender(b.ctx, b.tenantID, "example.com", false)
			require.NoError(t, err, "smtp connectors need no SPF")
			require.NoError(t, b.svc.SenderAllowed(b.ctx, b.tenantID, "example.com", false))
			_, err = b.svc.CheckSender(b.ctx, b.tenantID, "example.com", true)
			require.Equal(t, err, b.svc.SenderAllowed(b.ctx, b.tenantID, "example.com", true), "the short answer is the same")
			if tt.status == dnscheck.StatusPass {
				require.NoError(t, err)
				return
			}
			var se *SenderError
			require.True(t, errors.As(err, &se))
			require.Equal(t, RuleSPF, se.Rule)
			require.Contains(t, se.Message, tt.code)
		})
	}

	t.Run("PlusAllSuggestsSoftFail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, []string{CheckOwnership, CheckDKIM}, `example.com. 300 IN TXT "v=spf1 +all"`)
		d, _ = b.check(t, d)
		for _, r := range b.svc.Records(d) {
			if r.Purpose == CheckSPF {
				require.Equal(t, "v=spf1 include:_spf.platform.test ~all", r.Value)
			}
		}
	})
	t.Run("NestedIncludeReportsPathAndLookups", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, []string{CheckOwnership, CheckDKIM}, tests[0].zone...)
		_, chk := b.check(t, d)
		r := resultOf(t, chk.Results, CheckSPF)
		require.Equal(t, []string{"example.com", "_spf.example.com", platformSPF}, r.SPF.IncludePath)
		require.Equal(t, 3, r.SPF.Lookups)
		require.Equal(t, dnscheck.SPFPass, r.SPF.Evaluations[0].Result)
		require.Equal(t, "192.0.2.10", r.SPF.Evaluations[0].IP)
	})
}
