package sendingdomain

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestPreview(t *testing.T) {
	t.Parallel()

	t.Run("PassesWhenIntendedRecordsWouldPass", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, nil, `example.com. 300 IN TXT "v=spf1 include:other-provider.test ~all"`, `other-provider.test. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"`)
		recs := b.records(t, d)
		res, err := b.svc.Preview(b.ctx, b.tenantID, d.ID, Preview{Zone: recs[CheckOwnership] + "\n" + recs[CheckDKIM] + "\n" +
			`example.com. 3600 IN TXT "v=spf1 include:other-provider.test include:_spf.platform.test ~all"`})
		require.NoError(t, err)
		require.Equal(t, OutcomePass, res.Outcome, "%+v", res.Results)
		spf := resultOf(t, res.Results, CheckSPF)
		require.Equal(t, "spf.ok", spf.Code, spf.Message)
		require.Equal(t, dnscheck.OverlayServer, spf.Resolver)
		require.Equal(t, 2, spf.SPF.Lookups, "the live include is evaluated")

		after := b.get(t, d)
		require.Equal(t, StatusPending, after.Status, "a preview changes nothing")
		require.Empty(t, after.Results)
	})
	t.Run("FindsConflictWithLiveRecords", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		// Another provider's include brings the tree over the 10-lookup limit.
		b.serve(t, d, nil, `big.provider.test. 300 IN TXT "v=spf1 a a a a a a a a a ~all"`)
		res, err := b.svc.Preview(b.ctx, b.tenantID, d.ID, Preview{SPF: "v=spf1 include:big.provider.test include:_spf.platform.test ~all"})
		require.NoError(t, err)
		require.Equal(t, "spf.too_many_lookups", resultOf(t, res.Results, CheckSPF).Code)
		require.Equal(t, OutcomeFail, res.Outcome, "ownership and DKIM are not published yet")
	})
	t.Run("ReplacesOnlyTheKindGiven", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, []string{CheckOwnership}, `example.com. 300 IN TXT "v=spf1 -all"`)
		res, err := b.svc.Preview(b.ctx, b.tenantID, d.ID, Preview{DKIM: []PreviewDKIM{{Selector: "sw1", Value: "v=DKIM1; k=ed25519; p=" + d.DKIMPublicKey}}})
		require.NoError(t, err)
		require.Equal(t, "ownership.ok", resultOf(t, res.Results, CheckOwnership).Code, "the live ownership record stays")
		require.Equal(t, "spf.include_missing", resultOf(t, res.Results, CheckSPF).Code)
		require.Equal(t, "dkim.key_type_mismatch", resultOf(t, res.Results, CheckDKIM).Code)
	})
	t.Run("RefusesBadInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		for _, tc := range []struct {
			p     Preview
			field string
		}{
			{Preview{}, "spf"},
			{Preview{Zone: "example.com. IN TXT \"unterminated"}, "zone"},
			{Preview{Zone: `other.test. 300 IN TXT "v=spf1 -all"`}, "zone"},
			{Preview{DKIM: []PreviewDKIM{{Selector: "bad selector", Value: "p=x"}}}, "dkim[0].selector"},
		} {
			_, err := b.svc.Preview(b.ctx, b.tenantID, d.ID, tc.p)
			var ve *validate.Error
			require.ErrorAs(t, err, &ve, "%+v", tc.p)
			require.Equal(t, tc.field, ve.Fields[0].Field)
		}
	})
}
