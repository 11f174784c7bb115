package delivery

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMailboxGone(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name  string
		reply Reply
		want  bool
	}{
		{"UnknownUserEnhanced", Reply{Code: 550, EnhancedCode: "5.1.1", Text: "<jane@example.org>: Recipient address rejected: User unknown in virtual mailbox table"}, true},
		{"NoSuchDomain", Reply{Code: 550, EnhancedCode: "5.1.2", Text: "Host or domain name not found"}, true},
		{"NullMX", Reply{Code: 556, EnhancedCode: "5.1.10", Text: "Recipient address has null MX"}, true},
		{"MailboxDisabled", Reply{Code: 550, EnhancedCode: "5.2.1", Text: "The email account that you tried to reach is disabled"}, true},
		{"PolicyRejection", Reply{Code: 550, EnhancedCode: "5.7.1", Text: "Message rejected as spam"}, false},
		{"DMARC", Reply{Code: 550, EnhancedCode: "5.7.26", Text: "Unauthenticated email is not accepted"}, false},
		{"MailboxFull", Reply{Code: 552, EnhancedCode: "5.2.2", Text: "Mailbox full"}, false},
		{"BadSender", Reply{Code: 553, EnhancedCode: "5.1.7", Text: "Bad sender address"}, false},
		{"Temporary", Reply{Code: 450, EnhancedCode: "4.1.1", Text: "Recipient address rejected: unverified address"}, false},
		{"PlainUnknownUser", Reply{Code: 550, Text: "jane... User unknown"}, true},
		{"PlainPolicy", Reply{Code: 550, Text: "Relaying denied"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, MailboxGone(tc.reply))
		})
	}
}

func TestDiagnosticGone(t *testing.T) {
	t.Parallel()
	require.True(t, DiagnosticGone("550 5.1.1 <jane@customer.example>: Recipient address rejected: User unknown"))
	require.True(t, DiagnosticGone("550 user unknown"))
	require.False(t, DiagnosticGone("550 5.7.1 Message rejected as spam"))
	require.False(t, DiagnosticGone("426 connection timed out"))
	require.False(t, DiagnosticGone("X-Postfix; mail for example.org loops back to myself"))
}
