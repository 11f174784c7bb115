package bounce

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const testDomain = "bounces.sendwerk.test"

type testBundle struct {
	pool     *pgxpool.Pool
	svc      *Service
	sup      *suppression.Service
	tokens   *Tokens
	listener *Listener
	tenantID string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.NewPool(t)
	b := &testBundle{pool: pool, sup: suppression.NewService(pool), tokens: NewTokens(testDomain, []byte("0123456789abcdef0123456789abcdef"))}
	b.svc = NewService(pool, b.tokens, b.sup, nil)
	ten, err := tenant.NewService(pool).Create(context.Background(), "Acme", nil)
	require.NoError(t, err)
	b.tenantID = ten.ID
	b.listener, err = NewListener(ListenerConfig{Addr: "127.0.0.1:0", Hostname: "mx." + testDomain, MaxMessageBytes: 64 << 10}, b.svc)
	require.NoError(t, err)
	require.NoError(t, b.listener.Start())
	t.Cleanup(func() { _ = b.listener.Close() })
	return b
}

// message stores a delivered message to recipients and returns its id.
func (b *testBundle) message(t *testing.T, recipients ...string) string {
	t.Helper()
	id := ids.New(ids.Message)
	err := dbsqlc.New(b.pool).MessageInsert(context.Background(), dbsqlc.MessageInsertParams{
		ID: id, TenantID: b.tenantID, ConnectorID: ids.New(ids.Connector), Source: "api", Status: "delivered",
		FromEmail: "noreply@acme.example", EnvelopeFrom: "noreply@acme.example", Recipients: recipients,
		ToAddrs: recipients, CcAddrs: []string{}, MessageID: "<" + id + "@acme.example>", Tags: []string{}, Metadata: []byte("{}"), SizeBytes: 10,
	})
	require.NoError(t, err)
	return id
}

// send delivers a report to the listener over SMTP and returns the final reply's error.
func (b *testBundle) send(t *testing.T, from, to string, report []byte) error {
	t.Helper()
	c, err := smtp.Dial(b.listener.Addr())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.Mail(from))
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	require.NoError(t, err)
	_, err = w.Write(report)
	require.NoError(t, err)
	return w.Close()
}

func (b *testBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// sample reads a report from the dsn package's samples, addressed to rcpt.
func sample(t *testing.T, name, rcpt string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "dsn", "testdata", name))
	require.NoError(t, err)
	return []byte(strings.ReplaceAll(strings.ReplaceAll(string(raw), "jane@customer.example", rcpt), "\n", "\r\n"))
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tok := NewTokens("Bounces.Example.net", []byte("secret"))
	id := ids.New(ids.Message)
	rp := tok.ReturnPath(id)
	require.True(t, strings.HasPrefix(rp, "bounces+") && strings.HasSuffix(rp, "@bounces.example.net"), rp)
	require.LessOrEqual(t, strings.IndexByte(rp, '@'), 64, "the local part fits RFC 5321's 64 bytes")
	got, ok := tok.MessageID(strings.ToUpper(rp))
	require.True(t, ok, "receivers may change the case")
	require.Equal(t, id, got)

	other := ids.New(ids.Message)
	forged := strings.Replace(rp, strings.TrimPrefix(id, "msg_"), strings.TrimPrefix(other, "msg_"), 1)
	_, ok = tok.MessageID(forged)
	require.False(t, ok, "a token cannot be moved to another message")
	_, ok = NewTokens("bounces.example.net", []byte("another secret")).MessageID(rp)
	require.False(t, ok, "another key makes other tokens")
	_, ok = tok.MessageID(strings.Replace(rp, "bounces.example.net", "evil.example", 1))
	require.False(t, ok)
	_, ok = tok.MessageID("postmaster@bounces.example.net")
	require.False(t, ok)
}

func TestIntake(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	t.Run("PostfixDSNSuppressesUnknownMailbox", func(t *testing.T) {
		id := b.message(t, "gone@customer.example")
		require.NoError(t, b.send(t, "", b.tokens.ReturnPath(id), sample(t, "postfix-user-unknown.eml", "gone@customer.example")))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type = 'bounced' AND data->>'status' = '5.1.1'", id))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM events WHERE message_id = $1 AND type = 'message.bounced' AND (data->>'permanent')::bool", id))
		s, err := b.sup.Check(ctx, b.tenantID, "gone@customer.example")
		require.NoError(t, err)
		require.NotNil(t, s)
		require.Equal(t, suppression.ReasonHardBounce, s.Reason)
		require.Equal(t, id, s.SourceMessageID)
		require.Contains(t, s.Detail, "User unknown")
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM bounce_reports WHERE message_id = $1 AND outcome = 'recorded' AND raw IS NULL", id))
	})
	t.Run("RFC3464DiagnosticUserUnknown", func(t *testing.T) {
		id := b.message(t, "wsnell@sdcc13.ucsd.edu", "arathib@vnet.ibm.com", "johnh@hpnjld.njd.hp.com")
		require.NoError(t, b.send(t, "", b.tokens.ReturnPath(id), sample(t, "rfc3464-multi.eml", "x")))
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type = 'bounced'", id), "two failed, one delayed")
		s, err := b.sup.Check(ctx, b.tenantID, "wsnell@sdcc13.ucsd.edu")
		require.NoError(t, err)
		require.NotNil(t, s, "5.0.0 with '550 user unknown' means the mailbox does not exist")
		s, err = b.sup.Check(ctx, b.tenantID, "arathib@vnet.ibm.com")
		require.NoError(t, err)
		require.Nil(t, s, "'not a registered gateway user' is not clearly a missing mailbox")
	})
	t.Run("PolicyBounceDoesNotSuppress", func(t *testing.T) {
		id := b.message(t, "picky@customer.example")
		raw := strings.ReplaceAll(string(sample(t, "postfix-user-unknown.eml", "picky@customer.example")), "Status: 5.1.1", "Status: 5.7.1")
		raw = strings.ReplaceAll(raw, "smtp; 550 5.1.1 <picky@customer.example>: Recipient address", "smtp; 550 5.7.1 Message refused by policy; Recipient address")
		require.NoError(t, b.send(t, "", b.tokens.ReturnPath(id), []byte(raw)))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM message_events WHERE message_id = $1 AND type = 'bounced'", id))
		s, err := b.sup.Check(ctx, b.tenantID, "picky@customer.example")
		require.NoError(t, err)
		require.Nil(t, s)
	})
	t.Run("ComplaintSuppresses", func(t *testing.T) {
		id := b.message(t, "user@example.com")
		require.NoError(t, b.send(t, "abuse@example.com", b.tokens.ReturnPath(id), sample(t, "rfc5965-full.eml", "x")))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM events WHERE message_id = $1 AND type = 'message.complained' AND data->>'feedback_type' = 'abuse'", id))
		s, err := b.sup.Check(ctx, b.tenantID, "user@example.com")
		require.NoError(t, err)
		require.NotNil(t, s)
		require.Equal(t, suppression.ReasonComplaint, s.Reason)
	})
	t.Run("UnparseableIsKept", func(t *testing.T) {
		id := b.message(t, "someone@customer.example")
		raw := []byte("From: someone@customer.example\r\nSubject: Re: hello\r\n\r\nThanks!\r\n")
		require.NoError(t, b.send(t, "someone@customer.example", b.tokens.ReturnPath(id), raw))
		var stored []byte
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT raw FROM bounce_reports WHERE outcome = 'unparsed' AND rcpt_to = $1", b.tokens.ReturnPath(id)).Scan(&stored))
		require.Contains(t, string(stored), "Thanks!")
		list, err := b.svc.List(ctx, OutcomeUnparsed, "", 10)
		require.NoError(t, err)
		require.NotEmpty(t, list)
		require.Contains(t, list[0].Problem, "not a delivery status notification")
	})
	t.Run("ForgedTokenIsUnmatched", func(t *testing.T) {
		id := b.message(t, "victim@customer.example")
		forged := "bounces+" + strings.TrimPrefix(id, "msg_") + ".aaaaaaaaaaaaaaaa@" + testDomain
		require.NoError(t, b.send(t, "", forged, sample(t, "postfix-user-unknown.eml", "victim@customer.example")))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM bounce_reports WHERE outcome = 'unmatched' AND rcpt_to = $1 AND raw IS NOT NULL", forged))
		s, err := b.sup.Check(ctx, b.tenantID, "victim@customer.example")
		require.NoError(t, err)
		require.Nil(t, s, "a forged bounce suppresses nothing")
	})
	t.Run("MessageGoneIsUnmatched", func(t *testing.T) {
		// A genuine token whose message no longer exists (its tenant was deleted): kept for
		// the operator, and no timeline or stream row is written for it.
		id := ids.New(ids.Message)
		rp := b.tokens.ReturnPath(id)
		require.NoError(t, b.send(t, "", rp, sample(t, "postfix-user-unknown.eml", "gone@customer.example")))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM bounce_reports WHERE outcome = 'unmatched' AND rcpt_to = $1 AND problem LIKE '%no longer exists' AND tenant_id IS NULL", rp))
		require.Zero(t, b.count(t, "SELECT count(*) FROM message_events WHERE message_id = $1", id))
		require.Zero(t, b.count(t, "SELECT count(*) FROM events WHERE message_id = $1", id))
	})
	t.Run("OtherDomainsAreRefused", func(t *testing.T) {
		err := b.send(t, "", "jane@customer.example", []byte("x"))
		require.ErrorContains(t, err, "550")
		require.ErrorContains(t, err, "5.7.1 Relay access denied")
	})
	t.Run("OversizedIsRefused", func(t *testing.T) {
		big := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 5000))
		err := b.send(t, "", "postmaster@"+testDomain, big)
		require.ErrorContains(t, err, "552")
	})
	t.Run("GarbageNeverCrashes", func(t *testing.T) {
		for i, raw := range []string{"\x00\x01\x02", "Content-Type: multipart/report; boundary=\"\"\r\n\r\n--\r\n", "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: \x00\r\nAction: failed\r\nStatus: 5.1.1\r\n"} {
			require.NoError(t, b.send(t, "", fmt.Sprintf("postmaster%d@%s", i, testDomain), []byte(raw)), "report %d", i)
		}
		require.NoError(t, b.send(t, "", "postmaster@"+testDomain, sample(t, "rfc3464-simple.eml", "x")), "the listener still serves")
	})
}
