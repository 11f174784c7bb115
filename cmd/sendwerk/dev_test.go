package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/devinbox"
)

// devSend is a development server whose tenant verified shop.test and has a platform
// connector, which in development delivers to the mail catcher.
func devSend(t *testing.T) (*sendBundle, string) {
	t.Helper()
	ctx := context.Background()
	b := setup(t, devEnv)
	_, _, key := b.newTenantKey(t, "Shop", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	c := b.client(t, key)
	dom, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "shop.test"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, dom.StatusCode(), string(dom.Body))
	chk, err := c.CheckDomainWithResponse(ctx, dom.JSON201.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, chk.StatusCode(), string(chk.Body))
	require.EqualValues(t, "verified", chk.JSON200.Domain.Status, "the development DNS publishes the records at once")
	con, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "Platform", Kind: sendwerk.ConnectorKindPlatform,
		DefaultSender: sendwerk.Sender{Email: "noreply@shop.test"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, con.StatusCode(), string(con.Body))
	return &sendBundle{testBundle: b, key: key, c: c, connector: con.JSON201.Id}, dom.JSON201.Id
}

// TestDevInbox sends through the platform connector of a development server and finds the
// message, DKIM-verified, in /dev/inbox.json, its raw source, and the development DNS.
func TestDevInbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := devSend(t)
	r, err := s.c.SendMessageWithResponse(ctx, nil, sendwerk.MessageCreate{
		From: sendwerk.Address("Shop <noreply@shop.test>"), To: sendwerk.To("Jane Doe <jane@example.org>", "max@example.org"),
		Subject: "Your order 4711", Text: ptr("It ships today."),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
	s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)

	inbox := s.do(t, http.MethodGet, "/dev/inbox.json", "", "", "")
	require.Equal(t, http.StatusOK, inbox.status)
	var got struct{ Items []devinbox.Message }
	require.NoError(t, json.Unmarshal(inbox.body, &got))
	require.Len(t, got.Items, 1)
	m := got.Items[0]
	require.Equal(t, "Your order 4711", m.Subject)
	require.Equal(t, []string{"jane@example.org", "max@example.org"}, m.RcptTo)
	require.Contains(t, m.To, `"Jane Doe" <jane@example.org>`)
	require.Equal(t, devinbox.DKIMResult{Result: "pass", Domain: "shop.test"}, m.DKIM)

	raw := s.do(t, http.MethodGet, "/dev/inbox/"+m.ID+"/raw", "", "", "")
	require.Equal(t, http.StatusOK, raw.status)
	require.Contains(t, string(raw.body), "DKIM-Signature: ")
	require.Contains(t, string(raw.body), "It ships today.")

	t.Run("DNSPublishesTheRecords", func(t *testing.T) {
		q := new(dns.Msg).SetQuestion("sw1._domainkey.shop.test.", dns.TypeTXT)
		resp, _, err := (&dns.Client{Net: "tcp"}).Exchange(q, s.devDNS)
		require.NoError(t, err)
		require.Equal(t, dns.RcodeSuccess, resp.Rcode)
		require.True(t, resp.Authoritative)
		require.Len(t, resp.Answer, 1)
		require.True(t, strings.HasPrefix(strings.Join(resp.Answer[0].(*dns.TXT).Txt, ""), "v=DKIM1; k=rsa; p="))

		q = new(dns.Msg).SetQuestion("other.test.", dns.TypeTXT)
		resp, _, err = (&dns.Client{Net: "tcp"}).Exchange(q, s.devDNS)
		require.NoError(t, err)
		require.Equal(t, dns.RcodeNameError, resp.Rcode, "a domain nobody added does not exist")
	})
}

// TestDevInboxPage opens /dev/inbox in headless Chromium (Debian's) after a delivery and
// checks the row a developer looks for: sender, recipient, subject and a passing DKIM
// verdict, with a link to the source. It keeps a screenshot.
func TestDevInboxPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := devSend(t)
	r, err := s.c.SendMessageWithResponse(ctx, nil, sendwerk.MessageCreate{
		From: sendwerk.NamedAddress("Shop & Co", "noreply@shop.test"), To: sendwerk.To("jane@example.org"),
		Subject: "Grüße aus dem Shop", Html: ptr("<p>Hello <b>Jane</b></p>"),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, r.StatusCode(), string(r.Body))
	s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)

	page := s.do(t, http.MethodGet, "/dev/inbox", "", "", "")
	require.Equal(t, http.StatusOK, page.status)
	require.Contains(t, page.header.Get("Content-Security-Policy"), "default-src 'none'")

	dom, console := chromium(t, "--dump-dom", s.baseURL+"/dev/inbox")
	require.NotContains(t, console, "Content Security Policy")
	require.Contains(t, dom, "<h1>Development inbox</h1>")
	require.Contains(t, dom, `class="message"`)
	require.Contains(t, dom, "Grüße aus dem Shop")
	require.Contains(t, dom, "Shop &amp; Co")
	require.Contains(t, dom, "jane@example.org")
	require.Contains(t, dom, `<span class="dkim dkim-pass">dkim=pass</span>`)
	require.Contains(t, dom, "d=shop.test")
	require.Contains(t, dom, `href="inbox/1/raw"`)

	shot := filepath.Join(artifactDir(t), "dev-inbox.png")
	chromium(t, "--window-size=1200,600", "--hide-scrollbars", "--screenshot="+shot, s.baseURL+"/dev/inbox")
	t.Logf("screenshot of /dev/inbox: %s", shot)
}

// TestDevServicesOff: without them (the tests' default, and always in production) /dev/inbox
// is not served, and the banner says so.
func TestDevServicesOff(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := b.do(t, http.MethodGet, "/dev/inbox", "", "", "")
	require.Equal(t, http.StatusNotFound, r.status)

	var out bytes.Buffer
	printBanner(&out, &config.Config{Env: config.EnvProduction, HTTPAddr: ":8080"}, listenAddrs{HTTP: "[::]:8080"}, false)
	require.Contains(t, out.String(), "development inbox and DNS: off (production)")
	out.Reset()
	printBanner(&out, &config.Config{Env: config.EnvDevelopment, HTTPAddr: "localhost:8080", DataDir: ".data"},
		listenAddrs{HTTP: "127.0.0.1:8080", DevInbox: "127.0.0.1:2525", DevDNS: "127.0.0.1:2553"}, true)
	require.Contains(t, out.String(), "development inbox: http://localhost:8080/dev/inbox (SMTP on 127.0.0.1:2525")
	require.Contains(t, out.String(), "development DNS: 127.0.0.1:2553")
}
