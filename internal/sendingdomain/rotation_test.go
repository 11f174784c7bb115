package sendingdomain

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/ids"
)

// verified creates a domain, publishes all its records and checks it into verified.
func (b *testBundle) verified(t *testing.T, nd NewDomain) *Domain {
	t.Helper()
	d, err := b.svc.CreateDomain(b.ctx, b.tenantID, nd)
	require.NoError(t, err)
	purposes := []string{CheckOwnership, CheckSPF, CheckDMARC}
	for _, k := range d.DKIMKeys {
		purposes = append(purposes, "dkim:"+k.Selector)
	}
	b.serve(t, d, purposes)
	d, _ = b.check(t, d)
	require.Equal(t, StatusVerified, d.Status, "%+v", d.Results)
	return d
}

func (b *testBundle) get(t *testing.T, d *Domain) *Domain {
	t.Helper()
	out, err := b.svc.Get(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err)
	return out
}

func selectors(opts []delivery.DKIMOptions) []string {
	var out []string
	for _, o := range opts {
		out = append(out, o.Selector)
	}
	return out
}

func keyStates(d *Domain) map[string]string {
	out := map[string]string{}
	for _, k := range d.DKIMKeys {
		out[k.Selector] = k.State
	}
	return out
}

func dkimRecordOf(t *testing.T, recs []Record, selector string) Record {
	t.Helper()
	for _, r := range recs {
		if r.Purpose == CheckDKIM && r.Selector == selector {
			return r
		}
	}
	t.Fatalf("no dkim record for %s in %+v", selector, recs)
	return Record{}
}

func hasEvent(es []*Event, typ string) *Event {
	for _, e := range es {
		if e.Type == typ {
			return e
		}
	}
	return nil
}

func TestRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.verified(t, NewDomain{Name: "example.com"})

	// Rotating creates sw2 as pending beside the active sw1; signing stays on sw1.
	d, err := b.svc.Rotate(b.ctx, b.tenantID, d.ID, "")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"sw1": KeyActive, "sw2": KeyPending}, keyStates(d))
	rec := dkimRecordOf(t, b.svc.Records(d), "sw2")
	require.Equal(t, RequirementRequired, rec.Requirement)
	require.Equal(t, "sw2._domainkey.example.com", rec.FQDN)
	require.Contains(t, ZoneFile(d, b.svc.Records(d)), "new key sw2, signing switches to it once this record verifies")
	signers, err := b.svc.DKIMSigners(b.ctx, b.tenantID, "example.com")
	require.NoError(t, err)
	require.Equal(t, []string{"sw1"}, selectors(signers))

	_, err = b.svc.Rotate(b.ctx, b.tenantID, d.ID, "")
	var pending *RotationPendingError
	require.ErrorAs(t, err, &pending)
	require.Equal(t, "sw2", pending.Selector)

	// Unpublished, the pending key fails its check without touching the domain.
	d, chk := b.check(t, d)
	require.Equal(t, OutcomePass, chk.Outcome)
	require.Equal(t, StatusVerified, d.Status)
	require.Equal(t, "dkim.record_missing", dkimRecordOf(t, b.svc.Records(d), "sw2").Check.Code)
	require.Equal(t, KeyPending, keyStates(d)["sw2"])

	// Published and verified: sw2 signs, sw1 retires after the overlap.
	b.serve(t, d, []string{CheckOwnership, CheckSPF, "dkim:sw1", "dkim:sw2"})
	d, _ = b.check(t, d)
	require.Equal(t, map[string]string{"sw1": KeyRetiring, "sw2": KeyActive}, keyStates(d))
	require.Equal(t, "sw2", d.DKIMSelector)
	old := dkimRecordOf(t, b.svc.Records(d), "sw1")
	require.Equal(t, RequirementOptional, old.Requirement)
	require.Equal(t, b.clock.Now().Add(DefaultKeyOverlap), *old.RemoveAfter)
	ev := hasEvent(b.events(t, d), "dkim_key_activated")
	require.NotNil(t, ev)
	require.Contains(t, ev.Reason, "Keep the record of the previous key sw1 published until")
	signers, err = b.svc.DKIMSigners(b.ctx, b.tenantID, "example.com")
	require.NoError(t, err)
	require.Equal(t, []string{"sw2"}, selectors(signers))

	// After the overlap the old key is deleted.
	b.clock.Advance(DefaultKeyOverlap + time.Minute)
	d, _ = b.check(t, d)
	require.Equal(t, map[string]string{"sw2": KeyActive}, keyStates(d))
	require.NotNil(t, hasEvent(b.events(t, d), "dkim_key_retired"))
	require.Equal(t, StatusVerified, d.Status)
}

func TestEd25519BesideRSA(t *testing.T) {
	t.Parallel()

	t.Run("BothRequiredAndBothSign", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d, err := b.svc.CreateDomain(b.ctx, b.tenantID, NewDomain{Name: "example.com", Ed25519: true})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"sw1": KeyActive, "sw1ed": KeyActive}, keyStates(d))
		require.Equal(t, "v=DKIM1; k=ed25519; p="+d.key(KeyActive, AlgorithmEd25519).PublicKey, dkimRecordOf(t, b.svc.Records(d), "sw1ed").Value)

		b.serve(t, d, []string{CheckOwnership, CheckSPF, "dkim:sw1"})
		d, chk := b.check(t, d)
		require.Equal(t, OutcomeFail, chk.Outcome, "an active Ed25519 key's record is required too")
		require.Equal(t, StatusPending, d.Status)

		b.serve(t, d, []string{CheckOwnership, CheckSPF, "dkim:sw1", "dkim:sw1ed"})
		d, _ = b.check(t, d)
		require.Equal(t, StatusVerified, d.Status)
		signers, err := b.svc.DKIMSigners(b.ctx, b.tenantID, "example.com")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"sw1", "sw1ed"}, selectors(signers))
		signed, err := delivery.SignDKIM([]byte("From: a@example.com\r\nTo: b@customer.example\r\nSubject: x\r\n\r\nhi\r\n"), signers...)
		require.NoError(t, err)
		resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{b.dns.Addr()}})
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
			ans, err := resolver.Lookup(context.Background(), name, dns.TypeTXT)
			if err != nil {
				return nil, err
			}
			return ans.TXT(), nil
		}})
		require.NoError(t, err)
		require.Len(t, vs, 2)
		require.NoError(t, vs[0].Err)
		require.NoError(t, vs[1].Err)
	})

	t.Run("EnabledLaterSignsOnlyOnceVerified", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.verified(t, NewDomain{Name: "example.com"})
		on := true
		d, err := b.svc.UpdateDKIMPolicy(b.ctx, b.tenantID, d.ID, DKIMPolicy{Ed25519: &on})
		require.NoError(t, err)
		require.True(t, d.DKIMEd25519)
		require.Equal(t, map[string]string{"sw1": KeyActive, "sw2ed": KeyPending}, keyStates(d))
		signers, err := b.svc.DKIMSigners(b.ctx, b.tenantID, "example.com")
		require.NoError(t, err)
		require.Equal(t, []string{"sw1"}, selectors(signers))

		b.serve(t, d, []string{CheckOwnership, CheckSPF, "dkim:sw1", "dkim:sw2ed"})
		d, _ = b.check(t, d)
		require.Equal(t, map[string]string{"sw1": KeyActive, "sw2ed": KeyActive}, keyStates(d))

		off := false
		d, err = b.svc.UpdateDKIMPolicy(b.ctx, b.tenantID, d.ID, DKIMPolicy{Ed25519: &off})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"sw1": KeyActive, "sw2ed": KeyRetiring}, keyStates(d))
	})
}

func TestScheduledRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	days := 90
	d := b.verified(t, NewDomain{Name: "example.com", RotationDays: &days})
	require.Equal(t, 90, *d.DKIMRotationDays)

	b.clock.Advance(90*24*time.Hour - DefaultRotationNotice - time.Hour)
	d, _ = b.check(t, d)
	require.Equal(t, map[string]string{"sw1": KeyActive}, keyStates(d), "not due yet")

	b.clock.Advance(2 * time.Hour)
	d, _ = b.check(t, d)
	require.Equal(t, map[string]string{"sw1": KeyActive, "sw2": KeyPending}, keyStates(d))
	ev := hasEvent(b.events(t, d), "dkim_rotation_due")
	require.NotNil(t, ev)
	require.Equal(t, "dkim.rotation_due", ev.Code)
	require.Contains(t, ev.Reason, "sw2._domainkey.example.com")

	_, err := b.svc.UpdateDKIMPolicy(b.ctx, b.tenantID, d.ID, DKIMPolicy{RotationDays: ptr(ptr(7))})
	require.Error(t, err)
	require.Contains(t, err.Error(), "dkim_rotation_days")
}

func ptr[T any](v T) *T { return &v }

// TestDKIMKeyContextKeepsMigratedKeys: migration 00009 moved each domain's key to the row
// 'dkk_' || substr(domain id, 5), sealed as "domain:<domain id>:dkim_key"; the key row's
// context must be exactly that string, or those keys would no longer open.
func TestDKIMKeyContextKeepsMigratedKeys(t *testing.T) {
	t.Parallel()
	domainID := ids.New(ids.Domain)
	require.Equal(t, "domain:"+domainID+":dkim_key", DKIMKeyContext("dkk_"+domainID[4:]))
	require.NotEqual(t, DKIMKeyContext(ids.New(ids.DKIMKey)), DKIMKeyContext(ids.New(ids.DKIMKey)))
}
