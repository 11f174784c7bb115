package message

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// RawSubmission is a message that arrives already rendered, over SMTP submission: the
// envelope and the bytes as the client sent them (with the relay's Received line on top).
type RawSubmission struct {
	ConnectorID  string
	EnvelopeFrom string
	Recipients   []string
	Data         []byte
	Source       string // SourceSMTP unless set
	// ID is the message id to use, so the relay can name it in its Received line before
	// submitting; empty means a new one.
	ID string
	// RecipientsChecked says the caller has looked every recipient up on the tenant's
	// suppression list during this submission and refused the suppressed ones (the relay
	// does at RCPT, through CheckRecipient), so SubmitRaw does not look them up again.
	RecipientsChecked bool
}

// SubmitRaw accepts a rendered message after the same checks as Submit: the envelope
// sender and the From header must both pass the connector's sender rules, limits and
// quotas apply, and the message and its job commit together before it is Accepted. The
// MIME is kept as sent; only a missing Message-ID or Date is added (RFC 6409 section 8).
func (s *Service) SubmitRaw(ctx context.Context, tenantID string, sub RawSubmission) (*Accepted, *Quota, error) {
	a := s.group.arrive()
	defer a.leave()
	conn, err := s.connectorFor(ctx, tenantID, sub.ConnectorID)
	if err != nil {
		return nil, nil, err
	}
	if conn.Status == connector.StatusPaused {
		return nil, nil, &ConnectorPausedError{ConnectorID: conn.ID}
	}
	id := sub.ID
	if id == "" {
		id = ids.New(ids.Message)
	} else if !ids.Valid(ids.Message, id) {
		return nil, nil, fmt.Errorf("error submitting raw message: %q is not a message id", id)
	}
	p, err := s.prepareRaw(ctx, tenantID, conn, id, sub)
	if err != nil {
		return nil, nil, err
	}
	acc := &Accepted{ID: id, Status: StatusQueued, MessageID: "<" + p.r.messageID + ">"}
	return s.commit(ctx, &pending{tenantID: tenantID, p: p, acc: acc, arrival: a})
}

// CheckEnvelopeSender applies the connector's sender rules to an envelope sender before the
// message arrives, so an SMTP client learns of a refused sender at MAIL FROM instead of after
// sending the whole message. SubmitRaw checks again (with the From header).
func (s *Service) CheckEnvelopeSender(ctx context.Context, tenantID, connectorID, from string) error {
	conn, err := s.connectorFor(ctx, tenantID, connectorID)
	if err != nil {
		return err
	}
	if conn.Status == connector.StatusPaused {
		return &ConnectorPausedError{ConnectorID: conn.ID}
	}
	a, err := mailaddr.Parse(from)
	if err != nil {
		return &BadAddressError{Field: "envelope_from", Role: RoleSender, Address: from, Reason: err.Error()}
	}
	return s.checkSender(ctx, tenantID, conn, "envelope_from", a.String())
}

func (s *Service) prepareRaw(ctx context.Context, tenantID string, conn *connector.Connector, id string, sub RawSubmission) (*prepared, error) {
	if len(sub.Data) > s.cfg.MaxMessageBytes {
		return nil, &TooLargeError{Field: "data", Size: len(sub.Data), Limit: s.cfg.MaxMessageBytes}
	}
	envFrom, err := mailaddr.Parse(sub.EnvelopeFrom)
	if err != nil {
		return nil, &BadAddressError{Field: "envelope_from", Role: RoleSender, Address: sub.EnvelopeFrom, Reason: err.Error()}
	}
	hdr, err := textproto.NewReader(bufio.NewReaderSize(bytes.NewReader(sub.Data), headerBufferSize(sub.Data))).ReadMIMEHeader()
	if err != nil {
		return nil, &MessageFormatError{Reason: "the message header cannot be parsed: " + err.Error()}
	}
	who, err := headerIdentities(hdr)
	if err != nil {
		return nil, err
	}
	// The envelope sender and the header's mailboxes mostly share a domain: one lookup each.
	memo := newSenderMemo()
	if err := s.checkSenderMemo(ctx, tenantID, conn, "envelope_from", envFrom.String(), memo); err != nil {
		return nil, err
	}
	for _, h := range who {
		if err := s.checkSenderMemo(ctx, tenantID, conn, h.field, h.addr.String(), memo); err != nil {
			return nil, err
		}
	}
	rcpts, err := parseRecipients(sub.Recipients)
	if err != nil {
		return nil, err
	}
	from := who[0]
	data, msgID := completeHeader(sub.Data, hdr, id, from.addr.Domain, s.NowFunc())
	source := sub.Source
	if source == "" {
		source = SourceSMTP
	}
	r := &rendered{
		from: from.addr, fromName: storable(from.name), recipients: rcpts, subject: storable(decodeSubject(hdr.Get("Subject"))),
		to: headerAddrs(hdr, "To"), cc: headerAddrs(hdr, "Cc"), messageID: storable(msgID), mime: data,
	}
	// Recipients not checked by the caller are looked up when the message is committed.
	unscreened := !sub.RecipientsChecked && s.cfg.Suppressions != nil
	return &prepared{id: id, conn: conn, r: r, source: source, envelope: envFrom.String(), recipients: rcpts, unscreened: unscreened}, nil
}

// headerBufferSize fits the reader that parses a message's header to the header, up to
// bufio's default: a message is parsed for each submission, and most headers are far
// shorter than the default buffer (a longer line is still read whole, in pieces).
func headerBufferSize(data []byte) int {
	n := bytes.Index(data, []byte("\r\n\r\n"))
	if n < 0 || n+4 > 4096 {
		return 4096
	}
	return n + 4
}

// identity is a mailbox the message claims to come from, and the header field naming it.
type identity struct {
	namedAddr
	field string
}

// headerIdentities returns every mailbox of the From field (first) and of the Sender field
// when present; the sender rule applies to each. RFC 5322 section 3.6: exactly one From
// field, at most one Sender field, and a From with several mailboxes needs a Sender.
func headerIdentities(hdr textproto.MIMEHeader) ([]identity, error) {
	if n := len(hdr["From"]); n != 1 {
		return nil, &MessageFormatError{Reason: fmt.Sprintf("the message must have exactly one From header field, not %d (RFC 5322 section 3.6)", n)}
	}
	if n := len(hdr["Sender"]); n > 1 {
		return nil, &MessageFormatError{Reason: fmt.Sprintf("the message may have at most one Sender header field, not %d (RFC 5322 section 3.6)", n)}
	}
	out, err := headerMailboxes(hdr.Get("From"), "header.from")
	if err != nil {
		return nil, err
	}
	if v, ok := hdr["Sender"]; ok {
		sender, err := headerMailboxes(v[0], "header.sender")
		if err != nil {
			return nil, err
		}
		if len(sender) != 1 {
			return nil, &MessageFormatError{Reason: "the Sender header field must hold exactly one address"}
		}
		return append(out, sender...), nil
	}
	if len(out) > 1 {
		return nil, &MessageFormatError{Reason: "a From header field with several addresses needs a Sender header field (RFC 5322 section 3.6.2)"}
	}
	return out, nil
}

func headerMailboxes(value, field string) ([]identity, error) {
	name := map[string]string{"header.from": "From", "header.sender": "Sender"}[field]
	list, err := mail.ParseAddressList(value)
	if err != nil || len(list) == 0 {
		return nil, &MessageFormatError{Reason: "the " + name + " header field must hold e-mail addresses"}
	}
	out := make([]identity, 0, len(list))
	for _, l := range list {
		a, err := mailaddr.Parse(l.Address)
		if err != nil {
			return nil, &MessageFormatError{Reason: fmt.Sprintf("the %s header field's address %q %s", name, l.Address, err.Error())}
		}
		out = append(out, identity{namedAddr{addr: a, name: l.Name}, field})
	}
	return out, nil
}

func parseRecipients(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, validate.Field("recipients", "at least one recipient is required")
	}
	if len(list) > MaxRecipients {
		return nil, &TooManyRecipientsError{Field: "recipients", Count: len(list), Limit: MaxRecipients}
	}
	out := make([]string, 0, len(list))
	for i, r := range list {
		a, err := mailaddr.Parse(r)
		if err != nil {
			return nil, &BadAddressError{Field: fmt.Sprintf("recipients[%d]", i), Role: RoleRecipient, Address: r, Reason: err.Error()}
		}
		out = append(out, a.String())
	}
	return dedupe(out), nil
}

// completeHeader adds Message-ID and Date when the client left them out and returns the
// Message-ID without angle brackets.
func completeHeader(data []byte, hdr textproto.MIMEHeader, id, domain string, now time.Time) ([]byte, string) {
	var extra strings.Builder
	msgID := strings.Trim(strings.TrimSpace(hdr.Get("Message-Id")), "<>")
	if msgID == "" {
		msgID = id + "@" + domain
		extra.WriteString("Message-ID: <" + msgID + ">\r\n")
	}
	if hdr.Get("Date") == "" {
		extra.WriteString("Date: " + now.UTC().Format(time.RFC1123Z) + "\r\n")
	}
	if extra.Len() == 0 {
		return data, msgID
	}
	return append([]byte(extra.String()), data...), msgID
}

func headerAddrs(hdr textproto.MIMEHeader, name string) []string {
	list, err := mail.ParseAddressList(hdr.Get(name))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, storable(a.Address))
	}
	return out
}

// storable makes header text that is only shown (subject, names, the message log's To and
// Cc) fit a text column: a message may carry 8-bit Latin-1 or a NUL in its header, which
// PostgreSQL refuses in text. The MIME itself is kept as sent.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func decodeSubject(s string) string {
	dec, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return dec
}
