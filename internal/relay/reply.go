package relay

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// reply turns a pipeline error into the SMTP reply, counting it; surprises are logged and
// answered as temporary, so the client keeps the message and tries again.
func (s *session) reply(err error, stage string) *smtp.SMTPError {
	r, class := replyFor(err, time.Now())
	s.srv.metrics.messages.WithLabelValues(class).Inc()
	if class == "error" {
		s.log.Error("smtp submission failed", "stage", stage, "error", err)
	}
	return r
}

// replyFor is the one mapping of message.Service's typed refusals to replies, with a
// metrics class:
//   - a refused sender: 550 5.7.1 naming the address and the rule;
//   - a limit or quota: 451 4.7.1 saying when to retry; a paused connector: 451 4.7.0;
//   - too large: 552 5.3.4; too many recipients: 452 4.5.3; a bad address: 553 5.1.7
//     (sender) or 550 5.1.3 (recipient); a broken header: 550 5.6.0;
//   - other invalid input: 550 5.6.0 naming what is wrong;
//   - the database unreachable: 451 4.3.0 saying so (the client keeps the message);
//   - anything else: 451 4.3.0.
func replyFor(err error, now time.Time) (*smtp.SMTPError, string) {
	var (
		le      *message.LimitError
		paused  *message.ConnectorPausedError
		sender  *message.SenderRefusedError
		large   *message.TooLargeError
		many    *message.TooManyRecipientsError
		addr    *message.BadAddressError
		format  *message.MessageFormatError
		noConn  *message.ConnectorNotFoundError
		invalid *validate.Error
		se      *message.SuppressedError
	)
	if ue, ok := store.AsUnavailable(err); ok {
		return unavailableReply(ue), "unavailable"
	}
	switch {
	case errors.As(err, &se) && len(se.Recipients) > 0:
		return suppressedReply(se.Recipients[0]), "rejected"
	case errors.As(err, &le):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
			Message: oneLine(fmt.Sprintf("%s; retry after %s (in %s)", capitalize(le.Error()), le.Reset.UTC().Format(time.RFC3339), le.RetryAfter(now)))}, "deferred"
	case errors.As(err, &paused):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: "The connector is paused and accepts no messages; try again later"}, "deferred"
	case errors.As(err, &sender):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: oneLine(fmt.Sprintf("Sender <%s> refused: %s", sender.Address, sender.Reason))}, "rejected"
	case errors.As(err, &large):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too large: " + large.Error()}, "rejected"
	case errors.As(err, &many):
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients: " + many.Error()}, "rejected"
	case errors.As(err, &addr) && addr.Role == message.RoleSender:
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: oneLine("Bad sender address: " + addr.Reason)}, "rejected"
	case errors.As(err, &addr):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: oneLine("Bad recipient address: " + addr.Reason)}, "rejected"
	case errors.As(err, &format):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: capitalize(oneLine(format.Reason))}, "rejected"
	case errors.As(err, &noConn):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "The connector of this relay credential no longer exists"}, "rejected"
	case errors.As(err, &invalid) && len(invalid.Fields) > 0:
		f := invalid.Fields[0]
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: oneLine(f.Field + ": " + f.Message)}, "rejected"
	}
	return errTempFailure, "error"
}

// unavailableReply answers a submission the database could not take. After a lost COMMIT
// the message may have been queued all the same; SMTP has no idempotency key, so the reply
// says so.
func unavailableReply(ue *store.UnavailableError) *smtp.SMTPError {
	msg := "Database unavailable, message not queued; try again shortly"
	if ue.Ambiguous {
		msg = "Database connection lost while queueing; the message may have been queued, try again shortly"
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: msg}
}

// oneLine keeps a reply on one line: go-smtp would turn line breaks into a multi-line reply.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// suppressedReply refuses a suppressed recipient: 5.1.1 for an address that bounced as
// non-existent, 5.7.1 with the reason for the others (complaint, manual, unsubscribe).
func suppressedReply(r message.SuppressedRecipient) *smtp.SMTPError {
	if r.Reason == suppression.ReasonHardBounce {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "Recipient " + r.Address + " is suppressed: an earlier message bounced as mailbox unknown"}
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("Recipient %s is on this account's suppression list (%s)", r.Address, r.Reason)}
}
