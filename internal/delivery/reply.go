package delivery

import (
	"cmp"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/wneessen/go-mail"
)

// Reply is one SMTP reply: code, RFC 3463 enhanced code and text.
type Reply struct {
	Code         int    `json:"code"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	Text         string `json:"text"`
}

// String renders the reply as the server wrote it, on one line.
func (r Reply) String() string {
	parts := []string{fmt.Sprint(r.Code)}
	if r.EnhancedCode != "" {
		parts = append(parts, r.EnhancedCode)
	}
	if r.Text != "" {
		parts = append(parts, r.Text)
	}
	return strings.Join(parts, " ")
}

// parseReply splits the enhanced code from each line of a textproto reply message and
// joins multi-line replies with spaces.
func parseReply(code int, msg string) Reply {
	r := Reply{Code: code}
	var lines []string
	for _, line := range strings.Split(msg, "\n") {
		first, rest, _ := strings.Cut(line, " ")
		if isEnhancedCode(first) {
			r.EnhancedCode = cmp.Or(r.EnhancedCode, first)
			line = rest
		}
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	r.Text = strings.Join(lines, " ")
	return r
}

// isEnhancedCode reports an RFC 3463 status code: class 2, 4 or 5, then two numbers of
// one to three digits.
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// queueID extracts the upstream's queue id from replies like Postfix's
// "Ok: queued as 4XyZ12", or returns "".
func queueID(text string) string {
	i := strings.Index(strings.ToLower(text), "queued as ")
	if i < 0 {
		return ""
	}
	id, _, _ := strings.Cut(text[i+len("queued as "):], " ")
	return strings.TrimRight(id, ".,;)")
}

// replyOf finds an SMTP reply inside an error from go-mail, go-smtp or net/textproto.
func replyOf(err error) (Reply, bool) {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return parseReply(tpErr.Code, tpErr.Msg), true
	}
	var smtpErr *gosmtp.SMTPError
	if errors.As(err, &smtpErr) {
		return fromSMTPError(smtpErr), true
	}
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) && sendErr.ErrorCode() >= 200 {
		r := parseReply(sendErr.ErrorCode(), "")
		r.EnhancedCode = sendErr.EnhancedStatusCode()
		r.Text = sendErr.Error()
		return r, true
	}
	return Reply{}, false
}

// fromSMTPError converts go-smtp's error type.
func fromSMTPError(e *gosmtp.SMTPError) Reply {
	r := Reply{Code: e.Code, Text: e.Message}
	if e.EnhancedCode != gosmtp.NoEnhancedCode && e.EnhancedCode != (gosmtp.EnhancedCode{}) {
		r.EnhancedCode = fmt.Sprintf("%d.%d.%d", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
	}
	return r
}
