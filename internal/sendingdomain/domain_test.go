package sendingdomain

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestCreate(t *testing.T) {
	t.Parallel()

	t.Run("StoresALabelAndRSA2048Key", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &Config{SPFInclude: platformSPF})
		d := b.create(t, " Bücher.Example. ")
		require.Equal(t, "xn--bcher-kva.example", d.Name)
		require.Equal(t, "bücher.example", d.Unicode())
		require.Equal(t, StatusPending, d.Status)
		require.Equal(t, DefaultSelector, d.DKIMSelector)
		require.Len(t, d.VerificationToken, 32)
		require.Equal(t, b.clock.Now().Add(DefaultIntervalPending), d.NextCheckAt)

		der, err := base64.StdEncoding.DecodeString(d.DKIMPublicKey)
		require.NoError(t, err)
		pub, err := x509.ParsePKIXPublicKey(der)
		require.NoError(t, err)
		require.Equal(t, 2048, pub.(*rsa.PublicKey).N.BitLen())

		signers, err := b.svc.DKIMSigners(b.ctx, b.tenantID, "bücher.example")
		require.NoError(t, err)
		require.Len(t, signers, 1)
		signer := signers[0].Signer
		require.True(t, signer.Public().(*rsa.PublicKey).Equal(pub), "the sealed private key belongs to the published public key")

		var sealed []byte
		require.NoError(t, b.db.QueryRow(b.ctx, "SELECT private_key FROM sending_domain_dkim_keys WHERE domain_id = $1", d.ID).Scan(&sealed))
		plain, err := x509.MarshalPKCS8PrivateKey(signer)
		require.NoError(t, err)
		require.False(t, bytes.Contains(sealed, plain[len(plain)-64:]), "the private key is stored encrypted")
	})

	t.Run("EnqueuesFirstCheckAndRecordsEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		var queue string
		require.NoError(t, b.db.QueryRow(b.ctx,
			"SELECT queue FROM river_job WHERE kind = 'sending_domain_check' AND args->>'domain_id' = $1", d.ID).Scan(&queue))
		require.Equal(t, QueueChecks, queue)
		es := b.events(t, d)
		require.Len(t, es, 1)
		require.Equal(t, "created", es[0].Type)
		require.Equal(t, StatusPending, es[0].ToStatus)
	})

	t.Run("RejectsDuplicatesPerTenantOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		first := b.create(t, "example.com")
		_, err := b.svc.Create(b.ctx, b.tenantID, "EXAMPLE.com.")
		var dup *DuplicateError
		require.ErrorAs(t, err, &dup)
		require.Equal(t, first.ID, dup.ID)

		other, err := tenant.NewService(b.db).Create(b.ctx, "Other", nil)
		require.NoError(t, err)
		second, err := b.svc.Create(b.ctx, other.ID, "example.com")
		require.NoError(t, err, "another tenant may claim the same domain with its own token")
		require.NotEqual(t, first.VerificationToken, second.VerificationToken)
	})

	t.Run("ValidatesTheName", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		for in, msg := range map[string]string{
			"":                     "is required",
			"noreply@example.com":  "without a local part",
			"https://example.com/": "without scheme",
			"192.0.2.1":            "not an IP address",
			"com":                  "valid domain name like example.com",
			"co.uk":                "public suffix",
			"exa mple.com":         "without scheme",
			"-bad-.example":        "valid domain name",
			"_dmarc.example.com":   "valid domain name",
		} {
			_, err := b.svc.Create(b.ctx, b.tenantID, in)
			var v *validate.Error
			require.True(t, errors.As(err, &v), "%q: %v", in, err)
			require.Equal(t, "domain", v.Fields[0].Field)
			require.Contains(t, v.Fields[0].Message, msg, in)
		}
		sub := b.create(t, "mail.example.co.uk")
		require.Equal(t, "mail.example.co.uk", sub.Name, "subdomains are allowed")
	})
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	d := b.create(t, "example.com")
	other, err := tenant.NewService(b.db).Create(b.ctx, "Other", nil)
	require.NoError(t, err)

	_, err = b.svc.Get(b.ctx, other.ID, d.ID)
	require.True(t, IsNotFound(err))
	_, _, err = b.svc.Check(b.ctx, other.ID, d.ID)
	require.True(t, IsNotFound(err))
	_, err = b.svc.ListChecks(b.ctx, other.ID, d.ID, "", 10)
	require.True(t, IsNotFound(err))
	_, err = b.svc.ListEvents(b.ctx, other.ID, d.ID, "", 10)
	require.True(t, IsNotFound(err))
	_, err = b.svc.DKIMSigners(b.ctx, other.ID, "example.com")
	require.True(t, IsNotFound(err))
	_, err = b.svc.CheckSender(b.ctx, other.ID, "example.com", false)
	require.True(t, IsSenderError(err))
	require.True(t, IsNotFound(b.svc.Delete(b.ctx, other.ID, d.ID)))
	list, err := b.svc.List(b.ctx, other.ID, "", 10)
	require.NoError(t, err)
	require.Empty(t, list)

	_, err = b.svc.Get(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err, "the owner still has it")
}

func TestRecords(t *testing.T) {
	t.Parallel()

	t.Run("NamesRelativeToTheRegistrableDomain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "mail.example.co.uk")
		recs := b.svc.Records(d)
		require.Len(t, recs, 4)
		byPurpose := map[string]Record{}
		for _, r := range recs {
			byPurpose[r.Purpose] = r
			require.Equal(t, "example.co.uk", r.Zone)
			require.Equal(t, "TXT", r.Type)
			require.Equal(t, RecordTTL, r.TTL)
			require.Nil(t, r.Check, "not checked yet")
		}
		require.Equal(t, "mail", byPurpose[CheckOwnership].Host)
		require.Equal(t, "sendwerk-verification="+d.VerificationToken, byPurpose[CheckOwnership].Value)
		require.Equal(t, "sw1._domainkey.mail", byPurpose[CheckDKIM].Host)
		require.Equal(t, "sw1._domainkey.mail.example.co.uk", byPurpose[CheckDKIM].FQDN)
		require.Equal(t, "v=DKIM1; k=rsa; p="+d.DKIMPublicKey, byPurpose[CheckDKIM].Value)
		require.Equal(t, "v=spf1 include:_spf.platform.test ~all", byPurpose[CheckSPF].Value)
		require.Equal(t, RequirementPlatform, byPurpose[CheckSPF].Requirement)
		require.Equal(t, "_dmarc.mail", byPurpose[CheckDMARC].Host)
		require.Equal(t, DefaultDMARCRecord, byPurpose[CheckDMARC].Value)
		require.Equal(t, RequirementRecommended, byPurpose[CheckDMARC].Requirement)
	})

	t.Run("MergesSPFWithThePublishedRecordAndShowsFoundDMARC", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		d := b.create(t, "example.com")
		b.serve(t, d, nil, `example.com. 300 IN TXT "v=spf1 mx ip4:198.51.100.1 -all"`,
			`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@example.com"`)
		d, _ = b.check(t, d)
		recs := map[string]Record{}
		for _, r := range b.svc.Records(d) {
			recs[r.Purpose] = r
		}
		require.Equal(t, "v=spf1 mx ip4:198.51.100.1 include:_spf.platform.test -all", recs[CheckSPF].Value)
		require.Equal(t, "fail", string(recs[CheckSPF].Check.Status))
		require.Equal(t, "v=DMARC1; p=reject; rua=mailto:d@example.com", recs[CheckDMARC].Value)
		require.Equal(t, "pass", string(recs[CheckDMARC].Check.Status))
		require.Equal(t, "ownership.token_missing", recs[CheckOwnership].Check.Code)
	})

	t.Run("ZoneFileSplitsLongValues", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &Config{SPFInclude: platformSPF, KeyBits: 2048})
		d := b.create(t, "example.com")
		zone := ZoneFile(d, b.svc.Records(d))
		require.Regexp(t, `(?m)^example\.com\. +3600 IN TXT "sendwerk-verification=`+d.VerificationToken+`"$`, zone)
		for _, line := range strings.Split(zone, "\n") {
			if !strings.HasPrefix(line, "sw1._domainkey.") {
				continue
			}
			strs := strings.Split(strings.SplitN(line, " TXT ", 2)[1], `" "`)
			require.Len(t, strs, 2, "a 2048-bit key needs two strings")
			for _, s := range strs {
				require.LessOrEqual(t, len(strings.Trim(s, `"`)), maxTXTString)
			}
			require.Equal(t, "v=DKIM1; k=rsa; p="+d.DKIMPublicKey, strings.Trim(strs[0], `"`)+strings.Trim(strs[1], `"`))
		}
		// What a customer pastes verifies the domain.
		b.dns.SetZone(platformZone + zone)
		d, chk := b.check(t, d)
		require.Equal(t, OutcomePass, chk.Outcome, "%+v", chk.Results)
		require.Equal(t, StatusVerified, d.Status)
		require.Equal(t, "pass", string(resultOf(t, chk.Results, CheckSPF).Status))
	})

	t.Run("OmitsSPFWhenThePlatformHasNone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &Config{KeyBits: 1024})
		d := b.create(t, "example.com")
		for _, r := range b.svc.Records(d) {
			require.NotEqual(t, CheckSPF, r.Purpose)
		}
		b.serve(t, d, []string{CheckOwnership, CheckDKIM})
		d, chk := b.check(t, d)
		require.Len(t, chk.Results, 3)
		require.Equal(t, StatusVerified, d.Status)
		_, err := b.svc.CheckSender(b.ctx, b.tenantID, "example.com", true)
		require.NoError(t, err, "nothing to authorise: SPF cannot block")
	})
}
