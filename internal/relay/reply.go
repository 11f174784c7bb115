package relay

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendwerk/sendwerk/internal/message"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// reply turns a pipeline error into the SMTP reply, counting it; surprises are logged and
// answered as temporary, so the client keeps the message and tries again.
func (s *session) reply(err error, stage string) *smtp.SMTPError {
	r, class := replyFor(err, time.Now())
	s.srv.metrics.messages.WithLabelValues(class).Inc()
	if class == "error" {
		s.srv.logger.Error("smtp submission failed", s.logAttrs("stage", stage, "error", err)...)
	}
	return r
}

// replyFor maps an error of message.Service to a reply and a metrics class:
//   - a refused sender: 550 5.7.1 with the rule in words;
//   - a limit or quota: 451 4.7.1 saying when to retry; a paused connector: 451 4.7.0;
//   - other invalid input: a 5xx naming what is wrong;
//   - the database unreachable: 451 4.3.0 saying so (the client keeps the message);
//   - anything else: 451 4.3.0.
func replyFor(err error, now time.Time) (*smtp.SMTPError, string) {
	var le *message.LimitError
	var ve *validate.Error
	if ue, ok := store.AsUnavailable(err); ok {
		return unavailableReply(ue), "unavailable"
	}
	switch {
	case errors.As(err, &le):
		wait := max(le.Reset.Sub(now).Round(time.Second), time.Second)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
			Message: oneLine(fmt.Sprintf("%s; retry after %s (in %s)", capitalize(le.Error()), le.Reset.UTC().Format(time.RFC3339), wait))}, "deferred"
	case errors.Is(err, message.ErrConnectorPaused):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: "The connector is paused and accepts no messages; try again later"}, "deferred"
	case errors.As(err, &ve) && len(ve.Fields) > 0:
		return fieldReply(ve.Fields[0]), "rejected"
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

// fieldReply answers the first field error of a refused submission.
func fieldReply(f validate.FieldError) *smtp.SMTPError {
	msg := capitalize(oneLine(f.Message))
	switch {
	case f.Field == "from.email":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: msg}
	case f.Field == "envelope_from":
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address: " + f.Message}
	case f.Field == "from":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: msg}
	case f.Field == "data" && strings.Contains(f.Message, "at most"):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: msg}
	case strings.HasPrefix(f.Field, "recipients"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: " + oneLine(f.Message)}
	case f.Field == "connector_id":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "The connector of this relay credential no longer exists"}
	}
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: oneLine(f.Field + ": " + f.Message)}
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
