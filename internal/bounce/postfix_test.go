package bounce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/postfixtest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
	"github.com/sendwerk/sendwerk/internal/suppression"
)

// TestPostfixBouncesToListener is the path of platform-connector mail: Postfix (the
// operator's relay) takes a message with Sendwerk's VERP return path, the recipient's server
// refuses the recipient, and Postfix's own bounce comes back to the bounce listener, which
// records it on the message and suppresses the address.
func TestPostfixBouncesToListener(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	mx := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(to string) *smtp.SMTPError {
		if strings.HasPrefix(to, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected: User unknown in virtual mailbox table"}
		}
		return nil
	}}})
	dir, err := os.MkdirTemp("", "pfmap")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	transport := filepath.Join(dir, "transport")
	require.NoError(t, os.WriteFile(transport, []byte(fmt.Sprintf("%s smtp:[127.0.0.1]:%s\n", testDomain, portOf(b.listener.Addr()))), 0o644))
	pf := postfixtest.Start(t, postfixtest.Opts{RelayHost: mx.Addr(), MainCF: "transport_maps = texthash:" + transport})

	id := b.message(t, "gone@customer.example")
	msg := "From: noreply@acme.example\r\nTo: gone@customer.example\r\nSubject: Reset your password\r\nMessage-ID: <" + id + "@acme.example>\r\n\r\nHello.\r\n"
	pf.Sendmail(t, b.tokens.ReturnPath(id), []string{"gone@customer.example"}, []byte(msg))

	deadline := time.Now().Add(60 * time.Second)
	for b.count(t, "SELECT count(*) FROM bounce_reports") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no bounce arrived; Postfix log:\n%s", pf.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var outcome, problem string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT outcome, problem FROM bounce_reports").Scan(&outcome, &problem))
	require.Equal(t, OutcomeRecorded, outcome, problem)
	var status, diag string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT data->>'status', data->>'diagnostic_code' FROM message_events WHERE message_id = $1 AND type = 'bounced'", id).Scan(&status, &diag))
	require.Equal(t, "5.1.1", status)
	require.Contains(t, diag, "User unknown in virtual mailbox table")
	s, err := b.sup.Check(ctx, b.tenantID, "gone@customer.example")
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Equal(t, suppression.ReasonHardBounce, s.Reason)
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
