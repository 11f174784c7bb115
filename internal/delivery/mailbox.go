package delivery

import (
	"strconv"
	"strings"
)

// MailboxGone reports a permanent per-recipient reply that means the mailbox does not exist
// or no longer takes mail, so sending to the address again cannot succeed: the cases that
// suppress an address. Policy and content rejections (5.7.x: spam, DMARC, blocklists), a
// full mailbox (5.2.2) and sender problems (5.1.7, 5.1.8) do not, because another message
// or a later one may get through.
func MailboxGone(r Reply) bool {
	if r.Code < 500 || r.Code > 599 {
		return false
	}
	if r.EnhancedCode != "" {
		return MailboxGoneStatus(r.EnhancedCode)
	}
	// Without an enhanced code, 550/551/553 are used for policy as often as for unknown
	// users: only the servers' usual unknown-user wordings count.
	text := strings.ToLower(r.Text)
	for _, phrase := range unknownUserPhrases {
		if strings.Contains(text, phrase) {
			return true
		}
	}
	return false
}

// MailboxGoneStatus is MailboxGone for an RFC 3463 status code alone, as a DSN's Status
// field carries it: 5.1.1 (no such mailbox), 5.1.2 (no such domain), 5.1.3 (bad address
// syntax), 5.1.6 (mailbox moved), 5.1.10 (null MX), 5.2.1 (mailbox disabled).
func MailboxGoneStatus(status string) bool {
	switch strings.TrimSpace(status) {
	case "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1":
		return true
	}
	return false
}

// unknownUserPhrases are what Postfix, Exim, Sendmail, Exchange and the large mailbox
// providers write for a mailbox that does not exist.
var unknownUserPhrases = []string{
	"user unknown", "unknown user", "no such user", "no such mailbox", "mailbox not found",
	"recipient not found", "mailbox does not exist", "address does not exist", "user does not exist",
	"recipient address rejected: user unknown", "account has been disabled", "mailbox unavailable: user unknown",
}

// DiagnosticGone is MailboxGone for the SMTP reply a DSN quotes in its Diagnostic-Code
// ("550 5.1.1 <jane@example.org>: User unknown", "550 user unknown").
func DiagnosticGone(diagnostic string) bool {
	first, rest, _ := strings.Cut(strings.TrimSpace(diagnostic), " ")
	code, err := strconv.Atoi(first)
	if err != nil {
		return false
	}
	return MailboxGone(parseReply(code, rest))
}
