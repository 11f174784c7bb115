package message

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// anySenders allows every sender domain and signs nothing.
type anySenders struct{}

func (anySenders) CheckSender(context.Context, string, string, bool) error         { return nil }
func (anySenders) VerifiedElsewhere(context.Context, string, string) (bool, error) { return false, nil }

func (anySenders) DKIMSigners(context.Context, string, string) ([]delivery.DKIMOptions, error) {
	return nil, store.ErrNotFound
}

type verp struct{}

func (verp) ReturnPath(id string) string {
	return "bounces+" + strings.TrimPrefix(id, "msg_") + "@bounces.sendwerk.test"
}

// TestReturnPath: platform-connector mail leaves with the VERP return path, smtp-connector
// mail with the sender's own.
func TestReturnPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	up := smtptest.NewServer(t, smtptest.Opts{})
	box, err := secret.NewBox("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	require.NoError(t, err)
	platform := &delivery.Settings{Host: up.Host(), Port: up.Port(), Security: delivery.SecurityNone, AuthMechanism: delivery.AuthNone}
	conns := connector.NewService(b.pool, box, connector.Policy{AllowNoAuth: true, AllowPlaintext: true, AllowPrivateAddresses: true, Platform: platform})
	ten, err := tenant.NewService(b.pool).Create(ctx, "Platform user", nil)
	require.NoError(t, err)
	pc, err := conns.Create(ctx, ten.ID, connector.Input{Name: "platform", Kind: connector.KindPlatform, Sender: connector.Sender{Email: "noreply@acme.example"}})
	require.NoError(t, err)
	own, err := conns.Create(ctx, ten.ID, connector.Input{Name: "own", Kind: connector.KindSMTP, Sender: connector.Sender{Email: "noreply@acme.example"},
		SMTP: &connector.SMTPInput{Host: up.Host(), Port: up.Port(), Security: string(delivery.SecurityNone)}})
	require.NoError(t, err)

	d := NewDeliverer(b.pool, conns, anySenders{}, NewPools(nil), nil, &DelivererOptions{ReturnPaths: verp{}})
	svc := NewService(b.pool, b.svc.jobs, conns, anySenders{}, d, Config{})

	for _, c := range []*connector.Connector{pc, own} {
		req := request()
		req.ConnectorID = c.ID
		acc, _, err := svc.Submit(ctx, ten.ID, req, nil)
		require.NoError(t, err)
		a, err := d.Attempt(ctx, ten.ID, acc.ID, AttemptOpts{RetryAt: time.Now()})
		require.NoError(t, err)
		require.Equal(t, VerdictDelivered, a.Verdict)
	}
	msgs := up.WaitMessages(t, 2, 5*time.Second)
	require.True(t, strings.HasPrefix(msgs[0].From, "bounces+") && strings.HasSuffix(msgs[0].From, "@bounces.sendwerk.test"), msgs[0].From)
	require.Equal(t, "noreply@acme.example", msgs[1].From, "an smtp connector keeps the tenant's return path")
}
