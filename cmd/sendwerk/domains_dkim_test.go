package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// TestDomainDKIMRotationAndPreview drives Ed25519, rotation and preflight through the Go
// client, as integrators will.
func TestDomainDKIMRotationAndPreview(t *testing.T) {
	t.Parallel()
	b, zone := setupDomains(t, nil)
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)

	on := true
	created, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "shop.example", DkimEd25519: &on})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	dom := created.JSON201
	require.True(t, dom.DkimEd25519)
	require.Len(t, dom.DkimKeys, 2)
	require.Equal(t, sendwerk.DomainDKIMKeyAlgorithmRsa, dom.DkimKeys[0].Algorithm)
	require.Equal(t, "sw1ed", dom.DkimKeys[1].Selector)
	require.NotContains(t, string(created.Body), "PRIVATE")

	t.Run("PreviewBeforePublishing", func(t *testing.T) {
		zoneText := b.do(t, http.MethodGet, "/v1/domains/"+dom.Id+"/records?format=zone", key, "", "")
		require.Equal(t, http.StatusOK, zoneText.status)
		z := string(zoneText.body)
		r, err := c.PreviewDomainWithResponse(ctx, dom.Id, sendwerk.DomainPreviewRequest{Zone: &z})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		require.Equal(t, sendwerk.DomainPreviewOutcomePass, r.JSON200.Outcome, string(r.Body))
		dkims := 0
		for _, res := range r.JSON200.Results {
			if res.Check == sendwerk.DomainCheckResultCheckDkim {
				dkims++
				require.Equal(t, "dkim.ok", res.Code, res.Message)
			}
		}
		require.Equal(t, 2, dkims, "both keys are checked")

		bad := "v=spf1 include:_spf.sendwerk.example ~all"
		wrongKey := "v=DKIM1; k=rsa; p=" + dom.DkimKeys[1].Selector
		r, err = c.PreviewDomainWithResponse(ctx, dom.Id, sendwerk.DomainPreviewRequest{Spf: &bad, Dkim: &[]struct {
			Selector string `json:"selector"`
			Value    string `json:"value"`
		}{{Selector: "sw1ed", Value: wrongKey}}})
		require.NoError(t, err)
		require.Equal(t, sendwerk.DomainPreviewOutcomeFail, r.JSON200.Outcome)

		empty := b.do(t, http.MethodPost, "/v1/domains/"+dom.Id+"/preview", key, "application/json", `{}`)
		require.Equal(t, http.StatusUnprocessableEntity, empty.status, string(empty.body))
		require.Contains(t, fieldsOf(empty.problem), "spf")
		badZone := b.do(t, http.MethodPost, "/v1/domains/"+dom.Id+"/preview", key, "application/json", `{"zone": "evil.test. 300 IN TXT \"v=spf1 -all\""}`)
		require.Equal(t, http.StatusUnprocessableEntity, badZone.status, string(badZone.body))
		require.Contains(t, fieldsOf(badZone.problem)["zone"], "outside the zone")

		got, err := c.GetDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.NotEqual(t, sendwerk.DomainStatusVerified, got.JSON200.Status, "a preview changes nothing")
	})

	t.Run("RotateAfterVerification", func(t *testing.T) {
		r := b.do(t, http.MethodGet, "/v1/domains/"+dom.Id+"/records?format=zone", key, "", "")
		zone.SetZone(platformSPFZone + string(r.body))
		chk, err := c.CheckDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.Equal(t, sendwerk.DomainStatusVerified, chk.JSON200.Domain.Status, string(chk.Body))

		alg := sendwerk.DKIMRotationAlgorithmRsa
		rot, err := c.RotateDomainDKIMWithResponse(ctx, dom.Id, sendwerk.DKIMRotation{Algorithm: &alg})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, rot.StatusCode(), string(rot.Body))
		var pending *sendwerk.DomainRecord
		for i, rec := range rot.JSON200.Records {
			if rec.KeyState != nil && *rec.KeyState == sendwerk.DomainRecordKeyStatePending {
				pending = &rot.JSON200.Records[i]
			}
		}
		require.NotNil(t, pending, string(rot.Body))
		require.Equal(t, "sw2._domainkey", pending.Host)
		require.Equal(t, sendwerk.DomainRecordRequirementRequired, pending.Requirement)

		again := b.do(t, http.MethodPost, "/v1/domains/"+dom.Id+"/dkim/rotate", key, "application/json", `{}`)
		require.Equal(t, http.StatusConflict, again.status, string(again.body))
		require.Contains(t, *again.problem.Detail, "sw2._domainkey")

		badAlg := b.do(t, http.MethodPost, "/v1/domains/"+dom.Id+"/dkim/rotate", key, "application/json", `{"algorithm": "dsa"}`)
		require.Equal(t, http.StatusUnprocessableEntity, badAlg.status, string(badAlg.body))
	})

	t.Run("UpdatePolicy", func(t *testing.T) {
		r := b.do(t, http.MethodPatch, "/v1/domains/"+dom.Id, key, "application/json", `{"dkim_rotation_days": 180, "dkim_ed25519": false}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Contains(t, string(r.body), `"dkim_rotation_days":180`)
		require.Contains(t, string(r.body), `"dkim_ed25519":false`)
		require.True(t, strings.Contains(string(r.body), `"state":"retiring"`), "the Ed25519 key retires")

		r = b.do(t, http.MethodPatch, "/v1/domains/"+dom.Id, key, "application/json", `{"dkim_rotation_days": null}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Contains(t, string(r.body), `"dkim_rotation_days":null`)

		r = b.do(t, http.MethodPatch, "/v1/domains/"+dom.Id, key, "application/json", `{"dkim_rotation_days": 5}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
		require.Contains(t, fieldsOf(r.problem), "dkim_rotation_days")
	})
}
