package dsn

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseDSN(t *testing.T) {
	t.Parallel()

	t.Run("RFC3464Simple", func(t *testing.T) {
		t.Parallel()
		r, err := Parse(sample(t, "rfc3464-simple.eml"))
		require.NoError(t, err)
		require.Equal(t, KindDSN, r.Kind)
		require.Equal(t, "cs.utk.edu", r.ReportingMTA)
		require.Equal(t, []Recipient{{
			FinalRecipient: "louisl@larry.slip.umd.edu", OriginalRecipient: "louisl@larry.slip.umd.edu",
			Action: "failed", Status: "4.0.0", DiagnosticCode: "426 connection timed out",
		}}, r.Recipients)
	})
	t.Run("RFC3464MultipleRecipients", func(t *testing.T) {
		t.Parallel()
		r, err := Parse(sample(t, "rfc3464-multi.eml"))
		require.NoError(t, err)
		require.Len(t, r.Recipients, 3)
		require.Equal(t, "arathib@vnet.ibm.com", r.Recipients[0].FinalRecipient)
		require.Equal(t, "5.0.0", r.Recipients[0].Status, "the comment after the code is dropped")
		require.Equal(t, "550 'arathib@vnet.IBM.COM' is not a registered gateway user", r.Recipients[0].DiagnosticCode, "folded lines are joined")
		require.Equal(t, "vnet.ibm.com", r.Recipients[0].RemoteMTA)
		require.Equal(t, "delayed", r.Recipients[1].Action)
		require.False(t, r.Recipients[1].Failed())
		require.Equal(t, "550 user unknown", r.Recipients[2].DiagnosticCode)
	})
	t.Run("PostfixUserUnknown", func(t *testing.T) {
		t.Parallel()
		r, err := Parse(sample(t, "postfix-user-unknown.eml"))
		require.NoError(t, err)
		require.Equal(t, "mail.postfix.example", r.ReportingMTA)
		require.Equal(t, []Recipient{{
			FinalRecipient: "jane@customer.example", OriginalRecipient: "jane@customer.example", Action: "failed", Status: "5.1.1",
			RemoteMTA:      "mx.customer.example",
			DiagnosticCode: "550 5.1.1 <jane@customer.example>: Recipient address rejected: User unknown in virtual mailbox table",
		}}, r.Recipients)
		require.Equal(t, "msg_06h0a1b2c3d4e5f6g7h8j9k0mn@acme.example", r.OriginalMessageID)
	})
	t.Run("PostfixCaptured", func(t *testing.T) {
		t.Parallel()
		// Postfix 3.7's bounce as TestPostfixBouncesToListener (internal/bounce) received it.
		r, err := Parse(sample(t, "postfix-captured.eml"))
		require.NoError(t, err)
		require.Equal(t, "postfix.test", r.ReportingMTA)
		require.Len(t, r.Recipients, 1)
		require.Equal(t, "gone@customer.example", r.Recipients[0].FinalRecipient)
		require.Equal(t, "5.1.1", r.Recipients[0].Status)
		require.Equal(t, "550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown in virtual mailbox table", r.Recipients[0].DiagnosticCode)
		require.Equal(t, "msg_06h2h97abxtmseg4146897kmpm@acme.example", r.OriginalMessageID, "from the returned message/rfc822")
	})
	t.Run("Base64DeliveryStatus", func(t *testing.T) {
		t.Parallel()
		raw := "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"UmVwb3J0aW5nLU1UQTogZG5zOyB4LmV4YW1wbGUKCkZpbmFsLVJlY2lwaWVudDogcmZjODIyOyBh\r\nQGIuZXhhbXBsZQpBY3Rpb246IGZhaWxlZApTdGF0dXM6IDUuMS4xCg== \r\n--b--\r\n"
		r, err := Parse([]byte(raw))
		require.NoError(t, err)
		require.Equal(t, "a@b.example", r.Recipients[0].FinalRecipient)
		require.Equal(t, "5.1.1", r.Recipients[0].Status)
	})
}

func TestParseARF(t *testing.T) {
	t.Parallel()

	t.Run("RFC5965Simple", func(t *testing.T) {
		t.Parallel()
		r, err := Parse(sample(t, "rfc5965-simple.eml"))
		require.NoError(t, err)
		require.Equal(t, KindARF, r.Kind)
		require.Equal(t, &Feedback{FeedbackType: "abuse", UserAgent: "SomeGenerator/1.0"}, r.Feedback)
		require.Equal(t, "8787KJKJ3K4J3K4J3K4J3.mail@example.net", r.OriginalMessageID)
	})
	t.Run("RFC5965Full", func(t *testing.T) {
		t.Parallel()
		r, err := Parse(sample(t, "rfc5965-full.eml"))
		require.NoError(t, err)
		require.Equal(t, &Feedback{
			FeedbackType: "abuse", UserAgent: "SomeGenerator/1.0", OriginalMailFrom: "somespammer@example.net",
			OriginalRcptTo: []string{"user@example.com"}, ArrivalDate: "Thu, 8 Mar 2005 14:00:00 EDT",
			SourceIP: "192.0.2.1", ReportedDomain: "example.net",
		}, r.Feedback)
	})
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"AutoReply":        string(sample(t, "autoreply.eml")),
		"NoHeader":         "just text",
		"NoBoundary":       "Content-Type: multipart/report; report-type=delivery-status\r\n\r\nbody",
		"NoStatusPart":     "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
		"RecipientNoState": "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\n\r\n--b--\r\n",
		"FeedbackNoType":   "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nUser-Agent: x\r\n\r\n--b--\r\n",
		"Garbage":          "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\x00\x01no colon here\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := Parse([]byte(raw))
			require.Error(t, err)
			require.Nil(t, r)
			if name == "AutoReply" {
				require.True(t, errors.Is(err, ErrNotReport))
			}
		})
	}
}

// FuzzParse: whatever arrives, Parse returns a report or an error, never panics, and a
// report it returns is complete. The seeds are the samples, so go test runs them.
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	require.NoError(f, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") {
			f.Add(sample(f, e.Name()))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parse(raw)
		if err != nil {
			return
		}
		switch r.Kind {
		case KindDSN:
			require.NotEmpty(t, r.Recipients)
			for _, rc := range r.Recipients {
				require.NotEmpty(t, rc.FinalRecipient)
				require.NotEmpty(t, rc.Status)
			}
		case KindARF:
			require.NotEmpty(t, r.Feedback.FeedbackType)
		default:
			t.Fatalf("unknown kind %q", r.Kind)
		}
	})
}
