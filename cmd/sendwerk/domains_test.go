package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// platformSPFZone is the platform's own SPF record that customers include.
const platformSPFZone = `_spf.sendwerk.example. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"` + "\n"

// setupDomains starts a server whose DNS checks ask a test DNS server.
func setupDomains(t *testing.T, env map[string]string) (*testBundle, *dnstest.Server) {
	t.Helper()
	zone := dnstest.NewServer(t, platformSPFZone)
	vars := map[string]string{
		"SENDWERK_DNS_SERVERS": zone.Addr(), "SENDWERK_DNS_TIMEOUT": "300ms",
		"SENDWERK_SPF_INCLUDE": "_spf.sendwerk.example",
	}
	for k, v := range env {
		vars[k] = v
	}
	return setup(t, vars), zone
}

func TestDomains(t *testing.T) {
	t.Parallel()
	b, zone := setupDomains(t, nil)
	ctx := context.Background()
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	c := b.client(t, key)

	created, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "Bücher.example"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	dom := created.JSON201

	t.Run("CreatedAsALabel", func(t *testing.T) {
		require.Equal(t, "xn--bcher-kva.example", dom.Domain)
		require.Equal(t, "bücher.example", dom.DomainUnicode)
		require.Equal(t, sendwerk.DomainStatusPending, dom.Status)
		require.False(t, dom.SendAllowed)
		require.Equal(t, "sw1", dom.DkimSelector)
		require.True(t, dom.VerifiedAt.IsNull())
		require.True(t, strings.HasPrefix(dom.Id, "dom_"))
		require.NotContains(t, string(created.Body), "PRIVATE")
	})
	t.Run("DuplicateIsAConflict", func(t *testing.T) {
		r, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "XN--BCHER-KVA.example."})
		require.NoError(t, err)
		require.Equal(t, http.StatusConflict, r.StatusCode(), string(r.Body))
		p := r.ApplicationproblemJSON409
		require.Equal(t, "urn:sendwerk:problem:conflict", p.Type)
		require.Contains(t, *p.Detail, dom.Id)
	})
	t.Run("ValidationNamesTheField", func(t *testing.T) {
		for body, want := range map[string]string{
			`{"domain": "com"}`:                 "domain",
			`{"domain": "noreply@example.com"}`: "domain",
			`{"domain": ""}`:                    "domain",
			`{}`:                                "domain",
			`{"domain": "a.example", "x": 1}`:   "x",
		} {
			r := b.do(t, http.MethodPost, "/v1/domains", key, "application/json", body)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, body)
			require.Contains(t, fieldsOf(r.problem), want, body)
		}
		r := b.do(t, http.MethodPost, "/v1/domains", key, "application/json", `{"domain": "noreply@example.com"}`)
		require.Contains(t, fieldsOf(r.problem)["domain"], "without a local part")
	})
	t.Run("RecordsAsJSON", func(t *testing.T) {
		r, err := c.GetDomainRecordsWithResponse(ctx, dom.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		recs := map[sendwerk.DomainRecordPurpose]sendwerk.DomainRecord{}
		for _, rec := range r.JSON200.Records {
			recs[rec.Purpose] = rec
		}
		require.Len(t, recs, 4)
		own := recs[sendwerk.DomainRecordPurposeOwnership]
		require.Equal(t, "@", own.Host)
		require.Equal(t, "xn--bcher-kva.example", own.Fqdn)
		require.True(t, strings.HasPrefix(own.Value, "sendwerk-verification="))
		require.Equal(t, sendwerk.DomainRecordRequirementRequired, own.Requirement)
		dkim := recs[sendwerk.DomainRecordPurposeDkim]
		require.Equal(t, "sw1._domainkey", dkim.Host)
		require.True(t, strings.HasPrefix(dkim.Value, "v=DKIM1; k=rsa; p=MIIB"))
		require.Equal(t, "v=spf1 include:_spf.sendwerk.example ~all", recs[sendwerk.DomainRecordPurposeSpf].Value)
		require.Equal(t, 3600, recs[sendwerk.DomainRecordPurposeDmarc].Ttl)
	})

	var zoneText string
	t.Run("RecordsAsZoneFile", func(t *testing.T) {
		r := b.do(t, http.MethodGet, "/v1/domains/"+dom.Id+"/records?format=zone", key, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/plain"))
		zoneText = string(r.body)
		zp := dns.NewZoneParser(strings.NewReader(zoneText), "", "")
		n := 0
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			n++
			for _, s := range rr.(*dns.TXT).Txt {
				require.LessOrEqual(t, len(s), 255)
			}
		}
		require.NoError(t, zp.Err())
		require.Equal(t, 4, n)
	})
	t.Run("PublishAndCheck", func(t *testing.T) {
		zone.SetZone(platformSPFZone + zoneText)
		r, err := c.CheckDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		run := r.JSON200
		require.Equal(t, sendwerk.DomainCheckOutcomePass, run.Check.Outcome, string(r.Body))
		require.Equal(t, sendwerk.DomainCheckTriggerManual, run.Check.Trigger)
		require.Equal(t, sendwerk.DomainStatusVerified, run.Domain.Status)
		require.True(t, run.Domain.SendAllowed)
		require.False(t, run.Domain.VerifiedAt.IsNull())
		require.Equal(t, sendwerk.DomainSpfStatusPass, run.Domain.SpfStatus.MustGet())
		require.Len(t, run.Check.Results, 4)
		for _, res := range run.Check.Results {
			require.Equal(t, sendwerk.DomainCheckResultStatusPass, res.Status, res.Message)
			require.Equal(t, zone.Addr(), *res.Resolver)
		}

		recs, err := c.GetDomainRecordsWithResponse(ctx, dom.Id, nil)
		require.NoError(t, err)
		for _, rec := range recs.JSON200.Records {
			require.Equal(t, sendwerk.DomainRecordStatusPass, rec.Status, "records show the current check status")
		}
	})
	t.Run("CheckIsRateLimited", func(t *testing.T) {
		r := b.do(t, http.MethodPost, "/v1/domains/"+dom.Id+"/check", key, "", "")
		require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
		require.Equal(t, "urn:sendwerk:problem:rate-limited", r.problem.Type)
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err)
		require.True(t, secs >= 1 && secs <= 10, "Retry-After %d", secs)
	})
	t.Run("FailingCheckSaysWhatIsMissing", func(t *testing.T) {
		other, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "mail.acme.example"})
		require.NoError(t, err)
		r, err := c.CheckDomainWithResponse(ctx, other.JSON201.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), string(r.Body))
		require.Equal(t, sendwerk.DomainCheckOutcomeFail, r.JSON200.Check.Outcome)
		require.Equal(t, sendwerk.DomainStatusPending, r.JSON200.Domain.Status)
		own := r.JSON200.Check.Results[0]
		require.Equal(t, "ownership.token_missing", own.Code)
		require.Regexp(t, `^No TXT record sendwerk-verification=[0-9a-f]{32} was found at mail\.acme\.example; publish it and check again\.$`, own.Message)
		require.Equal(t, "dkim.record_missing", r.JSON200.Check.Results[2].Code)
	})
	t.Run("HistoryAndEvents", func(t *testing.T) {
		// The first check, enqueued when the domain was added, runs in the background.
		var all []sendwerk.DomainCheck
		require.Eventually(t, func() bool {
			r, err := c.ListDomainChecksWithResponse(ctx, dom.Id, nil)
			require.NoError(t, err)
			all = r.JSON200.Items
			return len(all) == 2
		}, 10*time.Second, 50*time.Millisecond)
		triggers := []sendwerk.DomainCheckTrigger{all[0].Trigger, all[1].Trigger}
		require.ElementsMatch(t, []sendwerk.DomainCheckTrigger{sendwerk.DomainCheckTriggerManual, sendwerk.DomainCheckTriggerScheduled}, triggers)
		require.False(t, all[0].StartedAt.Before(all[1].StartedAt), "newest first")

		limit := 1
		first, err := c.ListDomainChecksWithResponse(ctx, dom.Id, &sendwerk.ListDomainChecksParams{Limit: &limit})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, first.StatusCode(), string(first.Body))
		require.Equal(t, all[0].Id, first.JSON200.Items[0].Id)
		second, err := c.ListDomainChecksWithResponse(ctx, dom.Id, &sendwerk.ListDomainChecksParams{Limit: &limit, Cursor: first.JSON200.NextCursor})
		require.NoError(t, err)
		require.Equal(t, all[1].Id, second.JSON200.Items[0].Id)

		events, err := c.ListDomainEventsWithResponse(ctx, dom.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, events.StatusCode(), string(events.Body))
		items := events.JSON200.Items
		require.Len(t, items, 2)
		require.Equal(t, sendwerk.DomainEventTypeStatusChanged, items[0].Type)
		require.Equal(t, sendwerk.DomainEventFromStatusPending, items[0].FromStatus.MustGet())
		require.Equal(t, sendwerk.DomainStatusVerified, items[0].ToStatus)
		require.Contains(t, items[0].Reason, "verified")
		require.Equal(t, sendwerk.DomainEventTypeCreated, items[1].Type)
		require.True(t, items[1].FromStatus.IsNull())
	})
	t.Run("ListsOwnDomains", func(t *testing.T) {
		r, err := c.ListDomainsWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, r.JSON200.Items, 2)
		require.Equal(t, dom.Id, r.JSON200.Items[0].Id)
	})
	t.Run("TenantIsolationOnEveryRoute", func(t *testing.T) {
		_, _, otherKey := b.newTenantKey(t, "Other", sendwerk.ScopeManage)
		missing := "dom_00000000000000000000000000"
		for _, route := range []struct{ method, path string }{
			{http.MethodGet, "/v1/domains/%s"},
			{http.MethodDelete, "/v1/domains/%s"},
			{http.MethodGet, "/v1/domains/%s/records"},
			{http.MethodGet, "/v1/domains/%s/records?format=zone"},
			{http.MethodPost, "/v1/domains/%s/check"},
			{http.MethodGet, "/v1/domains/%s/checks"},
			{http.MethodGet, "/v1/domains/%s/events"},
		} {
			theirs := b.do(t, route.method, strings.Replace(route.path, "%s", dom.Id, 1), otherKey, "", "")
			none := b.do(t, route.method, strings.Replace(route.path, "%s", missing, 1), otherKey, "", "")
			require.Equal(t, http.StatusNotFound, theirs.status, "%s %s: %s", route.method, route.path, theirs.body)
			require.Equal(t, none.status, theirs.status)
			require.Equal(t, none.problem.Type, theirs.problem.Type)
			require.Equal(t, strings.Replace(*none.problem.Detail, missing, dom.Id, 1), *theirs.problem.Detail,
				"another tenant's domain is indistinguishable from a missing one")
		}
		list := b.do(t, http.MethodGet, "/v1/domains", otherKey, "", "")
		require.JSONEq(t, `{"items": []}`, string(list.body))
		dup := b.do(t, http.MethodPost, "/v1/domains", otherKey, "application/json", `{"domain": "bücher.example"}`)
		require.Equal(t, http.StatusCreated, dup.status, "another tenant may claim the same domain")

		got, err := c.GetDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.Equal(t, sendwerk.DomainStatusVerified, got.JSON200.Status, "the owner's domain is untouched")
	})
	t.Run("ScopesApply", func(t *testing.T) {
		_, _, readKey := b.newTenantKey(t, "Reader", sendwerk.ScopeRead)
		r := b.do(t, http.MethodPost, "/v1/domains", readKey, "application/json", `{"domain": "read.example"}`)
		require.Equal(t, http.StatusForbidden, r.status)
		r = b.do(t, http.MethodGet, "/v1/domains", readKey, "", "")
		require.Equal(t, http.StatusOK, r.status)
	})
	t.Run("Delete", func(t *testing.T) {
		r, err := c.DeleteDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, r.StatusCode())
		got, err := c.GetDomainWithResponse(ctx, dom.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, got.StatusCode())
	})
}

// TestReadmeDomains runs the README's sender-domain examples as written: the first block
// against a live server, the preview of the zone snippet it saved, then — once the snippet
// is "published" on a test DNS server — the check, and a key rotation.
func TestReadmeDomains(t *testing.T) {
	t.Parallel()
	b, zone := setupDomains(t, map[string]string{"SENDWERK_DOMAIN_MANUAL_CHECK_INTERVAL": "1ms"})
	otherProvider := `_spf.other-provider.example. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"` + "\n"
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	dir := t.TempDir()
	run := func(block, prefix string) string {
		t.Helper()
		script := strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, block), "```sh"), "```")
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", "BASE="+b.baseURL+"\nAPI_KEY="+key+"\n"+prefix+script)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}

	out := run("domains", "")
	m := regexp.MustCompile(`domain: (dom_\w+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Contains(t, out, "ownership (required): TXT @ -> ")
	require.Contains(t, out, "dkim (required): TXT sw1._domainkey -> ")
	require.Contains(t, out, "spf (required_for_platform): TXT @ -> ")
	require.Contains(t, out, "; Sendwerk records for example.com")

	zone.SetZone(platformSPFZone + otherProvider)
	out = run("domains-preview", "DOMAIN_ID="+m[1]+"\n")
	require.Contains(t, out, `"outcome": "pass"`)
	require.Contains(t, out, `"code": "dkim.ok"`)
	require.Contains(t, out, "spf.ok: The SPF record of example.com")

	snippet, err := os.ReadFile(filepath.Join(dir, "example.com.zone"))
	require.NoError(t, err)
	zone.SetZone(platformSPFZone + otherProvider + string(snippet))

	out = run("domains-check", "DOMAIN_ID="+m[1]+"\n")
	require.Contains(t, out, `"status": "verified"`)
	require.Contains(t, out, `"send_allowed": true`)
	require.Contains(t, out, `"trigger": "manual"`)
	require.Contains(t, out, `"to_status": "verified"`)
	require.Contains(t, out, "the domain is verified and may send")
	require.NotContains(t, out, `"status": "fail"`)

	out = run("domains-rotate", "DOMAIN_ID="+m[1]+"\n")
	require.Contains(t, out, "sw1._domainkey active (required)")
	require.Contains(t, out, "sw2._domainkey pending (required)")
	snippet, err = os.ReadFile(filepath.Join(dir, "example.com.zone"))
	require.NoError(t, err)
	zone.SetZone(platformSPFZone + string(snippet))
	out = run("domains-rotate-check", "DOMAIN_ID="+m[1]+"\n")
	require.Contains(t, out, `"selector": "sw1",`+"\n"+`    "state": "retiring"`)
	require.Contains(t, out, "mail is now signed with key sw2")
}
