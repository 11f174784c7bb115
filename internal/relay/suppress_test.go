package relay

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/suppression"
)

// refusesSuppressedRecipients: the relay answers a suppressed recipient at RCPT (5.1.1 for a
// hard bounce, 5.7.1 with the reason otherwise) and relays to the others, with one lookup
// per recipient: the message pipeline does not look them up again after DATA. A subtest of
// TestRelayRefusals, so it adds no server of its own beside TestRelayHugeMessage's
// allocation measurement.
func refusesSuppressedRecipients(t *testing.T, b *testBundle) {
	ctx := context.Background()
	_, err := b.suppressions.Add(ctx, b.tenantID, suppression.Entry{Address: "Gone@Customer.example", Reason: suppression.ReasonHardBounce})
	require.NoError(t, err)
	_, err = b.suppressions.Add(ctx, b.tenantID, suppression.Entry{Address: "angry@customer.example", Reason: suppression.ReasonComplaint})
	require.NoError(t, err)

	c := b.session(t)
	b.statements.take()
	c.expectCmd(250, "MAIL FROM:<%s>", sender)
	require.Equal(t, "5.1.1 Recipient gone@customer.example is suppressed: an earlier message bounced as mailbox unknown",
		c.expectCmd(550, "RCPT TO:<gone@customer.example>"))
	require.Equal(t, "5.7.1 Recipient angry@customer.example is on this account's suppression list (complaint)",
		c.expectCmd(550, "RCPT TO:<angry@customer.example>"))
	c.expectCmd(250, "RCPT TO:<fine@customer.example>")
	require.Equal(t, 3, count(b.statements.take(), "Suppression"), "one lookup at each RCPT")
	code, msg := c.data(testMessage(sender, "fine@customer.example", "Still sent to the others"))
	require.Equal(t, 250, code, msg)
	require.Zero(t, count(b.statements.take(), "Suppression"), "DATA does not look the recipients up again")

	var found bool
	for _, m := range b.messages(t) {
		if m.Subject == "Still sent to the others" {
			found = true
			require.Equal(t, []string{"fine@customer.example"}, m.Recipients)
		}
	}
	require.True(t, found)
}
