package relay

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/suppression"
)

func TestRelayRefusesSuppressedRecipientsAtRcpt(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, err := b.suppressions.Add(ctx, b.tenantID, suppression.Entry{Address: "Gone@Customer.example", Reason: suppression.ReasonHardBounce})
	require.NoError(t, err)
	_, err = b.suppressions.Add(ctx, b.tenantID, suppression.Entry{Address: "angry@customer.example", Reason: suppression.ReasonComplaint})
	require.NoError(t, err)

	c := b.session(t)
	c.expectCmd(250, "MAIL FROM:<%s>", sender)
	require.Equal(t, "5.1.1 Recipient gone@customer.example is suppressed: an earlier message bounced as mailbox unknown",
		c.expectCmd(550, "RCPT TO:<gone@customer.example>"))
	require.Equal(t, "5.7.1 Recipient angry@customer.example is on this account's suppression list (complaint)",
		c.expectCmd(550, "RCPT TO:<angry@customer.example>"))
	c.expectCmd(250, "RCPT TO:<fine@customer.example>")
	code, msg := c.data(testMessage(sender, "fine@customer.example", "Still sent"))
	require.Equal(t, 250, code, msg)

	stored := b.messages(t)
	require.Len(t, stored, 1)
	require.Equal(t, []string{"fine@customer.example"}, stored[0].Recipients)
}
