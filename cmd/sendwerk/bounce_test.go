package main

import (
	"context"
	"encoding/base64"
	"net/smtp"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/bounce"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestBounceIntakeThroughServer: with a bounce domain and listener configured, a DSN for a
// sent message reaches its timeline and the suppression list, and the operator sees every
// report, an unreadable one with its raw text.
func TestBounceIntakeThroughServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const domain = "bounces.sendwerk.test"
	s := setupSend(t, map[string]string{"SENDWERK_BOUNCE_DOMAIN": domain, "SENDWERK_BOUNCE_SMTP_ADDR": "127.0.0.1:0"}, smtptest.Opts{}, nil)
	require.NotEmpty(t, s.bounceAddr)
	key, err := base64.StdEncoding.DecodeString("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	require.NoError(t, err)
	tokens := bounce.NewTokens(domain, key)

	r := s.send(t, simpleMessage("jane@customer.example"))
	require.Equal(t, 202, r.StatusCode(), string(r.Body))
	id := r.JSON202.Id
	s.waitStatus(t, id, sendwerk.MessageStatusDelivered, 15*time.Second)

	dsn, err := os.ReadFile("../../internal/dsn/testdata/postfix-user-unknown.eml")
	require.NoError(t, err)
	report := strings.ReplaceAll(string(dsn), "\n", "\r\n")
	sendReport(t, s.bounceAddr, tokens.ReturnPath(id), report)
	sendReport(t, s.bounceAddr, "postmaster@"+domain, "Subject: hello\r\n\r\nIs anybody there?\r\n")

	m, err := s.c.GetMessageWithResponse(ctx, id)
	require.NoError(t, err)
	require.Contains(t, eventTypes(m.JSON200), "bounced")
	sup, err := s.c.GetSuppressionWithResponse(ctx, "jane@customer.example")
	require.NoError(t, err)
	require.Equal(t, 200, sup.StatusCode(), string(sup.Body))
	require.Equal(t, sendwerk.SuppressionReasonHardBounce, sup.JSON200.Reason)

	list, err := s.admin.ListBounceReportsWithResponse(ctx, &sendwerk.ListBounceReportsParams{})
	require.NoError(t, err)
	require.Equal(t, 200, list.StatusCode(), string(list.Body))
	require.Len(t, list.JSON200.Items, 2)
	unparsed, recorded := list.JSON200.Items[0], list.JSON200.Items[1]
	require.Equal(t, sendwerk.BounceReportOutcomeUnparsed, unparsed.Outcome)
	require.Contains(t, *unparsed.Raw, "Is anybody there?")
	require.Equal(t, sendwerk.BounceReportOutcomeRecorded, recorded.Outcome)
	require.Equal(t, id, *recorded.MessageId)
	require.Nil(t, recorded.Raw, "a recorded report keeps no raw copy")

	forbidden, err := s.c.ListBounceReportsWithResponse(ctx, &sendwerk.ListBounceReportsParams{})
	require.NoError(t, err)
	require.Equal(t, 401, forbidden.StatusCode(), "tenants do not see the operator's reports")
}

func sendReport(t *testing.T, addr, rcpt, report string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.Mail(""))
	require.NoError(t, c.Rcpt(rcpt))
	w, err := c.Data()
	require.NoError(t, err)
	_, err = w.Write([]byte(report))
	require.NoError(t, err)
	require.NoError(t, w.Close())
}
