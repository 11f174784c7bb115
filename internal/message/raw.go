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
}

// SubmitRaw accepts a rendered message after the same checks as Submit: the envelope
// sender and the From header must both pass the connector's sender rules, limits and
// quotas apply, and the message and its job commit together before it is Accepted. The
// MIME is kept as sent; only a missing Message-ID or Date is added (RFC 6409 section 8).
func (s *Service) SubmitRaw(ctx context.Context, tenantID string, sub RawSubmission) (*Accepted, *Quota, error) {
	conn, err := s.connectorFor(ctx, tenantID, sub.ConnectorID)
	if err != nil {
		return nil, nil, err
	}
	if conn.Status == connector.StatusPaused {
		return nil, nil, ErrConnectorPaused
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
	return s.commit(ctx, &pending{tenantID: tenantID, p: p, acc: acc})
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
		return ErrConnectorPaused
	}
	a, err := mailaddr.Parse(from)
	if err != nil {
		return validate.Field("envelope_from", err.Error())
	}
	return s.checkSender(ctx, tenantID, conn, a.String())
}

func (s *Service) prepareRaw(ctx context.Context, tenantID string, conn *connector.Connector, id string, sub RawSubmission) (*prepared, error) {
	if len(sub.Data) > s.cfg.MaxMessageBytes {
		return nil, validate.Field("data", fmt.Sprintf("the message is %d bytes; at most %d are accepted", len(sub.Data), s.cfg.MaxMessageBytes))
	}
	envFrom, err := mailaddr.Parse(sub.EnvelopeFrom)
	if err != nil {
		return nil, validate.Field("envelope_from", err.Error())
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(sub.Data))).ReadMIMEHeader()
	if err != nil {
		return nil, validate.Field("data", "the message header cannot be parsed: "+err.Error())
	}
	from, err := headerFrom(hdr)
	if err != nil {
		return nil, err
	}
	for _, sender := range []string{envFrom.String(), from.addr.String()} {
		if err := s.checkSender(ctx, tenantID, conn, sender); err != nil {
			return nil, err
		}
	}
	rcpts, err := parseRecipients(sub.Recipients)
	if err != nil {
		return nil, err
	}
	data, msgID := completeHeader(sub.Data, hdr, id, from.addr.Domain, s.NowFunc())
	source := sub.Source
	if source == "" {
		source = SourceSMTP
	}
	r := &rendered{
		from: from.addr, fromName: from.name, recipients: rcpts, subject: decodeSubject(hdr.Get("Subject")),
		to: headerAddrs(hdr, "To"), cc: headerAddrs(hdr, "Cc"), messageID: msgID, mime: data,
	}
	return &prepared{id: id, conn: conn, r: r, source: source, envelope: envFrom.String(), recipients: rcpts}, nil
}

func headerFrom(hdr textproto.MIMEHeader) (namedAddr, error) {
	list, err := mail.ParseAddressList(hdr.Get("From"))
	if err != nil || len(list) != 1 {
		return namedAddr{}, validate.Field("from", "the From header must hold exactly one address")
	}
	a, err := mailaddr.Parse(list[0].Address)
	if err != nil {
		return namedAddr{}, validate.Field("from", "the From header's address "+err.Error())
	}
	return namedAddr{addr: a, name: list[0].Name}, nil
}

func parseRecipients(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, validate.Field("recipients", "at least one recipient is required")
	}
	out := make([]string, 0, len(list))
	for i, r := range list {
		a, err := mailaddr.Parse(r)
		if err != nil {
			return nil, validate.Field(fmt.Sprintf("recipients[%d]", i), err.Error())
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
		out = append(out, a.Address)
	}
	return out
}

func decodeSubject(s string) string {
	dec, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return dec
}
