package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestSuppressionList: a hard bounce suppresses the address, so it is not mailed twice; the
// tenant reads, adds and lifts entries through the API.
func TestSuppressionList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(to string) *smtp.SMTPError {
		if strings.HasPrefix(to, "never@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}}}
	s := setupSend(t, nil, opts, nil)

	first := s.send(t, simpleMessage("never@customer.example"))
	require.Equal(t, 202, first.StatusCode(), string(first.Body))
	s.waitStatus(t, first.JSON202.Id, sendwerk.MessageStatusFailed, 15*time.Second)

	got, err := s.c.GetSuppressionWithResponse(ctx, "Never@customer.example")
	require.NoError(t, err)
	require.Equal(t, 200, got.StatusCode(), string(got.Body))
	require.Equal(t, sendwerk.SuppressionReasonHardBounce, got.JSON200.Reason)
	require.Equal(t, first.JSON202.Id, *got.JSON200.SourceMessageId)
	require.Contains(t, got.JSON200.Detail, "550 5.1.1")

	t.Run("NoRecipientLeftIs422", func(t *testing.T) {
		r := s.send(t, simpleMessage("never@customer.example"))
		require.Equal(t, 422, r.StatusCode(), string(r.Body))
		require.Equal(t, "application/problem+json", r.HTTPResponse.Header.Get("Content-Type"))
		require.Equal(t, "recipients", (*r.ApplicationproblemJSON422.Errors)[0].Field)
		require.Contains(t, (*r.ApplicationproblemJSON422.Errors)[0].Message, "never@customer.example is on the suppression list (hard_bounce)")
	})
	t.Run("OthersAreStillSent", func(t *testing.T) {
		r := s.send(t, simpleMessage("never@customer.example", "fine@customer.example"))
		require.Equal(t, 202, r.StatusCode(), string(r.Body))
		require.Equal(t, []sendwerk.SuppressedRecipient{{Address: "never@customer.example", Reason: "hard_bounce"}}, *r.JSON202.Suppressed)
		m := s.waitStatus(t, r.JSON202.Id, sendwerk.MessageStatusDelivered, 15*time.Second)
		require.Equal(t, []string{"queued", "suppressed", "attempt", "delivered"}, eventTypes(m))
		require.Equal(t, []string{"fine@customer.example"}, m.Recipients)
	})
	t.Run("ManualEntriesListAndLift", func(t *testing.T) {
		reason := sendwerk.SuppressionCreateReasonUnsubscribe
		c, err := s.c.CreateSuppressionWithResponse(ctx, sendwerk.SuppressionCreate{Address: "Jane@Customer.example", Reason: &reason})
		require.NoError(t, err)
		require.Equal(t, 201, c.StatusCode(), string(c.Body))
		require.Equal(t, "jane@customer.example", c.JSON201.Address)

		l, err := s.c.ListSuppressionsWithResponse(ctx, &sendwerk.ListSuppressionsParams{Limit: ptr(1)})
		require.NoError(t, err)
		require.Equal(t, "jane@customer.example", l.JSON200.Items[0].Address, "newest first")
		require.NotNil(t, l.JSON200.NextCursor)
		l, err = s.c.ListSuppressionsWithResponse(ctx, &sendwerk.ListSuppressionsParams{Limit: ptr(1), Cursor: l.JSON200.NextCursor})
		require.NoError(t, err)
		require.Equal(t, "never@customer.example", l.JSON200.Items[0].Address)
		l, err = s.c.ListSuppressionsWithResponse(ctx, &sendwerk.ListSuppressionsParams{Address: ptr("JANE@")})
		require.NoError(t, err)
		require.Len(t, l.JSON200.Items, 1)

		d, err := s.c.DeleteSuppressionWithResponse(ctx, "jane@customer.example")
		require.NoError(t, err)
		require.Equal(t, 204, d.StatusCode())
		d, err = s.c.DeleteSuppressionWithResponse(ctx, "jane@customer.example")
		require.NoError(t, err)
		require.Equal(t, 404, d.StatusCode())
	})
	t.Run("BadInputIsAProblem", func(t *testing.T) {
		past := time.Now().Add(-time.Hour)
		body := sendwerk.SuppressionCreate{Address: "not-an-address"}
		body.ExpiresAt.Set(past)
		c, err := s.c.CreateSuppressionWithResponse(ctx, body)
		require.NoError(t, err)
		require.Equal(t, 422, c.StatusCode(), string(c.Body))
		fields := map[string]string{}
		for _, f := range *c.ApplicationproblemJSON422.Errors {
			fields[f.Field] = f.Message
		}
		require.Contains(t, fields, "address")
		require.Equal(t, "must be in the future", fields["expires_at"])
	})
	t.Run("OtherTenantsDoNotSeeIt", func(t *testing.T) {
		_, _, key := s.newTenantKey(t, "Other", sendwerk.ScopeManage)
		r, err := s.client(t, key).GetSuppressionWithResponse(ctx, "never@customer.example")
		require.NoError(t, err)
		require.Equal(t, 404, r.StatusCode())
	})
}
