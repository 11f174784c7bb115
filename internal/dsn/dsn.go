// Package dsn reads the reports that come back to a return path: delivery status
// notifications (RFC 3464, and their internationalised form, RFC 6533) and abuse feedback
// reports (ARF, RFC 5965). It is a pure parser: no database, no network. Anything it cannot
// read is an error, never a panic, because its input comes from anyone on the Internet.
package dsn

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
)

// Kind is what a report is.
type Kind string

// Kinds.
const (
	KindDSN Kind = "dsn"
	KindARF Kind = "arf"
)

// Limits on what is read, so a hostile report costs little.
const (
	maxParts      = 16
	maxRecipients = 100
	maxFieldBytes = 64 << 10
)

// ErrNotReport means the message is not a multipart/report with a delivery-status or
// feedback-report part: an auto-reply, a challenge, a human's answer.
var ErrNotReport = errors.New("not a delivery status notification or feedback report")

// Report is a parsed DSN or ARF report.
type Report struct {
	Kind Kind `json:"kind"`
	// ReportingMTA and OriginalEnvelopeID are the DSN's per-message fields.
	ReportingMTA       string `json:"reporting_mta,omitempty"`
	OriginalEnvelopeID string `json:"original_envelope_id,omitempty"`
	// Recipients are the DSN's per-recipient fields.
	Recipients []Recipient `json:"recipients,omitempty"`
	// Feedback is the ARF report's machine-readable part.
	Feedback *Feedback `json:"feedback,omitempty"`
	// OriginalMessageID is the Message-ID of the message the report is about, from its
	// returned headers, when they came back.
	OriginalMessageID string `json:"original_message_id,omitempty"`
}

// Recipient is one recipient's delivery status (RFC 3464 section 2.3).
type Recipient struct {
	FinalRecipient    string `json:"final_recipient"`
	OriginalRecipient string `json:"original_recipient,omitempty"`
	// Action is failed, delayed, delivered, relayed or expanded.
	Action string `json:"action"`
	// Status is the RFC 3463 code, e.g. 5.1.1.
	Status         string `json:"status"`
	RemoteMTA      string `json:"remote_mta,omitempty"`
	DiagnosticCode string `json:"diagnostic_code,omitempty"`
}

// Failed reports a recipient the report gives up on.
func (r Recipient) Failed() bool { return r.Action == "failed" }

// Feedback is an ARF report's machine-readable part (RFC 5965 section 3.5).
type Feedback struct {
	// FeedbackType is abuse, fraud, virus, other, not-spam or auth-failure.
	FeedbackType     string   `json:"feedback_type"`
	UserAgent        string   `json:"user_agent,omitempty"`
	OriginalMailFrom string   `json:"original_mail_from,omitempty"`
	OriginalRcptTo   []string `json:"original_rcpt_to,omitempty"`
	ArrivalDate      string   `json:"arrival_date,omitempty"`
	SourceIP         string   `json:"source_ip,omitempty"`
	ReportedDomain   string   `json:"reported_domain,omitempty"`
}

// Parse reads a whole message (header and body) as it arrived over SMTP.
func Parse(raw []byte) (*Report, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("unreadable message header: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/report" || params["boundary"] == "" {
		return nil, ErrNotReport
	}
	rep := &Report{}
	if err := rep.readParts(multipart.NewReader(msg.Body, params["boundary"])); err != nil {
		return nil, err
	}
	if err := rep.check(); err != nil {
		return nil, err
	}
	return rep, nil
}

func (rep *Report) readParts(mr *multipart.Reader) error {
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if rep.Kind != "" {
				return nil // a truncated tail (the returned message) does not spoil the report
			}
			return fmt.Errorf("malformed MIME structure: %w", err)
		}
		if i >= maxParts {
			return nil
		}
		if err := rep.readPart(part); err != nil {
			return err
		}
	}
}

func (rep *Report) readPart(part *multipart.Part) error {
	mediaType, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
	body := io.LimitReader(part, maxFieldBytes)
	if strings.EqualFold(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding")), "base64") {
		body = base64.NewDecoder(base64.StdEncoding, &lineJoiner{r: body})
	}
	switch strings.ToLower(mediaType) {
	case "message/delivery-status", "message/global-delivery-status":
		return rep.readDeliveryStatus(body)
	case "message/feedback-report":
		return rep.readFeedback(body)
	case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
		rep.readOriginalHeaders(body)
	}
	return nil
}

// readDeliveryStatus reads the per-message block and the per-recipient blocks.
func (rep *Report) readDeliveryStatus(body io.Reader) error {
	rep.Kind = KindDSN
	blocks, err := readBlocks(body)
	if err != nil {
		return fmt.Errorf("malformed delivery-status part: %w", err)
	}
	if len(blocks) == 0 {
		return errors.New("empty delivery-status part")
	}
	rep.ReportingMTA = typed(blocks[0].Get("Reporting-Mta"))
	rep.OriginalEnvelopeID = strings.TrimSpace(blocks[0].Get("Original-Envelope-Id"))
	for _, b := range blocks[1:] {
		if len(rep.Recipients) == maxRecipients {
			break
		}
		rep.Recipients = append(rep.Recipients, Recipient{
			FinalRecipient: address(b.Get("Final-Recipient")), OriginalRecipient: address(b.Get("Original-Recipient")),
			Action: strings.ToLower(firstWord(b.Get("Action"))), Status: firstWord(b.Get("Status")),
			RemoteMTA: typed(b.Get("Remote-Mta")), DiagnosticCode: typed(b.Get("Diagnostic-Code")),
		})
	}
	return nil
}

// readFeedback reads an ARF report's fields.
func (rep *Report) readFeedback(body io.Reader) error {
	rep.Kind = KindARF
	blocks, err := readBlocks(body)
	if err != nil {
		return fmt.Errorf("malformed feedback-report part: %w", err)
	}
	if len(blocks) == 0 {
		return errors.New("empty feedback-report part")
	}
	h := blocks[0]
	f := &Feedback{
		FeedbackType: strings.ToLower(firstWord(h.Get("Feedback-Type"))), UserAgent: strings.TrimSpace(h.Get("User-Agent")),
		OriginalMailFrom: bareAddress(h.Get("Original-Mail-From")), ArrivalDate: strings.TrimSpace(h.Get("Arrival-Date")),
		SourceIP: strings.TrimSpace(h.Get("Source-Ip")), ReportedDomain: strings.TrimSpace(h.Get("Reported-Domain")),
	}
	for _, v := range h.Values("Original-Rcpt-To") {
		if a := bareAddress(v); a != "" && len(f.OriginalRcptTo) < maxRecipients {
			f.OriginalRcptTo = append(f.OriginalRcptTo, a)
		}
	}
	rep.Feedback = f
	return nil
}

// readOriginalHeaders keeps the returned message's Message-ID; a part that does not parse
// is simply not used.
func (rep *Report) readOriginalHeaders(body io.Reader) {
	h, err := textproto.NewReader(bufio.NewReader(body)).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return
	}
	rep.OriginalMessageID = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
}

// check rejects reports without what makes them useful.
func (rep *Report) check() error {
	switch rep.Kind {
	case KindDSN:
		if len(rep.Recipients) == 0 {
			return errors.New("the delivery-status part names no recipient")
		}
		for i, r := range rep.Recipients {
			if r.FinalRecipient == "" || r.Action == "" || r.Status == "" {
				return fmt.Errorf("recipient %d lacks Final-Recipient, Action or Status", i+1)
			}
		}
	case KindARF:
		if rep.Feedback.FeedbackType == "" {
			return errors.New("the feedback report has no Feedback-Type")
		}
	default:
		return ErrNotReport
	}
	return nil
}

// readBlocks reads groups of header fields separated by blank lines; blank lines at the
// start or between groups are skipped.
func readBlocks(r io.Reader) ([]textproto.MIMEHeader, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	var out []textproto.MIMEHeader
	for _, chunk := range bytes.Split(data, []byte("\n\n")) {
		chunk = bytes.Trim(chunk, "\n")
		if len(bytes.TrimSpace(chunk)) == 0 {
			continue
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(chunk, '\n', '\n')))).ReadMIMEHeader()
		if err != nil {
			return nil, err
		}
		out = append(out, h)
		if len(out) > maxRecipients+1 {
			break
		}
	}
	return out, nil
}

// typed strips the type of a typed field ("rfc822; jane@example.org", "smtp; 550 …").
func typed(v string) string {
	if _, rest, ok := strings.Cut(v, ";"); ok {
		v = rest
	}
	return strings.Join(strings.Fields(v), " ")
}

// address is a typed address field's address, lower-cased domain untouched.
func address(v string) string { return bareAddress(typed(v)) }

// bareAddress strips angle brackets and comments.
func bareAddress(v string) string {
	v = strings.TrimSpace(v)
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Address
	}
	return strings.Trim(firstWord(v), "<>")
}

func firstWord(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// lineJoiner drops spaces and tabs: base64.NewDecoder skips line breaks, but not the blanks
// some senders leave at line ends.
type lineJoiner struct{ r io.Reader }

func (l *lineJoiner) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}
