package message

import (
	"bytes"
	"fmt"
	"mime"
	netmail "net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wneessen/go-mail"

	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Limits on a submission, beyond the configurable size.
const (
	MaxRecipients    = 50
	MaxTags          = 10
	MaxMetadataKeys  = 20
	MaxMetadataValue = 500
	maxHeaderValue   = 900
)

// forbiddenHeaders are set by Sendwerk (or by the fields that name them) and may not be
// given as custom headers.
var forbiddenHeaders = []string{
	"from", "to", "cc", "bcc", "date", "message-id", "dkim-signature", "received", "return-path",
	"sender", "subject", "reply-to", "mime-version", "content-type", "content-transfer-encoding",
}

var (
	headerName = regexp.MustCompile(`^[!-9;-~]{1,76}$`) // RFC 5322 ftext, length-bounded
	tagPattern = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,64}$`)
	contentID  = regexp.MustCompile(`^[A-Za-z0-9_.\-@]{1,100}$`)
)

// Address is a mailbox with an optional display name.
type Address struct {
	Email string
	Name  string
}

// Attachment is a file carried by a message; ContentID makes it an inline part.
type Attachment struct {
	Filename    string
	ContentType string
	Content     []byte
	ContentID   string
}

// Request is one message as a client submits it.
type Request struct {
	ConnectorID string
	From        Address
	To, Cc, Bcc []Address
	ReplyTo     []Address
	Subject     string
	Text, HTML  string
	Attachments []Attachment
	Headers     map[string]string
	Tags        []string
	Metadata    map[string]string
	SendAt      *time.Time
}

// rendered is a validated request with its MIME bytes.
type rendered struct {
	from       mailaddr.Address
	fromName   string
	recipients []string // envelope: to, cc, bcc, deduplicated
	to, cc     []string
	subject    string
	messageID  string
	mime       []byte
}

// render validates r and renders it to MIME. The Message-ID is "<id@sender domain>", so a
// reply or bounce can be traced to the message.
func render(r *Request, id string, now time.Time, maxBytes int) (*rendered, error) {
	v := &validate.Error{}
	out := &rendered{subject: r.Subject}
	from, ok := checkAddress(v, "from", r.From)
	out.from, out.fromName = from, strings.TrimSpace(r.From.Name)
	to := checkAddresses(v, "to", r.To)
	cc := checkAddresses(v, "cc", r.Cc)
	bcc := checkAddresses(v, "bcc", r.Bcc)
	replyTo := checkAddresses(v, "reply_to", r.ReplyTo)
	checkContent(v, r)
	checkHeaders(v, r.Headers)
	checkTags(v, r.Tags, r.Metadata)
	if len(to)+len(cc)+len(bcc) == 0 {
		v.Add("to", "at least one recipient (to, cc or bcc) is required")
	}
	if n := len(r.To) + len(r.Cc) + len(r.Bcc); n > MaxRecipients {
		return nil, &TooManyRecipientsError{Field: "to", Count: n, Limit: MaxRecipients}
	}
	if err := v.Err(); err != nil || !ok {
		return nil, v.Err()
	}
	out.to, out.cc = addrStrings(to), addrStrings(cc)
	out.recipients = dedupe(append(append(addrStrings(to), addrStrings(cc)...), addrStrings(bcc)...))
	out.messageID = id + "@" + from.Domain
	raw, err := buildMIME(r, out, to, cc, replyTo, now)
	if err != nil {
		return nil, validate.Field("body", err.Error())
	}
	if len(raw) > maxBytes {
		return nil, &TooLargeError{Field: "attachments", Size: len(raw), Limit: maxBytes}
	}
	out.mime = raw
	return out, nil
}

type namedAddr struct {
	addr mailaddr.Address
	name string
}

func checkAddress(v *validate.Error, field string, a Address) (mailaddr.Address, bool) {
	parsed, err := mailaddr.Parse(strings.TrimSpace(a.Email))
	if err != nil {
		v.Add(field+".email", err.Error())
		return parsed, false
	}
	if strings.ContainsAny(a.Name, "\r\n") || utf8.RuneCountInString(a.Name) > 200 {
		v.Add(field+".name", "must be at most 200 characters on one line")
		return parsed, false
	}
	return parsed, true
}

func checkAddresses(v *validate.Error, field string, list []Address) []namedAddr {
	out := make([]namedAddr, 0, len(list))
	for i, a := range list {
		if parsed, ok := checkAddress(v, fmt.Sprintf("%s[%d]", field, i), a); ok {
			out = append(out, namedAddr{parsed, strings.TrimSpace(a.Name)})
		}
	}
	return out
}

func checkContent(v *validate.Error, r *Request) {
	if strings.TrimSpace(r.Text) == "" && strings.TrimSpace(r.HTML) == "" {
		v.Add("text", "text or html is required")
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		v.Add("subject", "must be one line")
	}
	for i, a := range r.Attachments {
		f := fmt.Sprintf("attachments[%d]", i)
		if !validFilename(a.Filename) {
			v.Add(f+".filename", "must be a file name of at most 255 bytes without quotes, slashes, line breaks or other control characters")
		}
		if a.ContentType != "" {
			ct, ok := mediaType(a.ContentType)
			if !ok {
				v.Add(f+".content_type", "must be a MIME type like application/pdf or text/plain; charset=utf-8 (RFC 2045)")
			}
			r.Attachments[i].ContentType = ct
		}
		if a.ContentID != "" && !contentID.MatchString(a.ContentID) {
			v.Add(f+".content_id", "must be letters, digits and . _ - @ (referenced in html as cid:<content_id>)")
		}
	}
}

// mediaType parses a content type (RFC 2045) and returns it re-formatted by mime, so what
// reaches the MIME header is only a type, a subtype and quoted parameters: no line break
// or stray text can ride along into the part's header.
func mediaType(s string) (string, bool) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", false
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") {
		return "", false
	}
	out := mime.FormatMediaType(mt, params)
	return out, out != ""
}

func validFilename(name string) bool {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.ContainsAny(name, "\"/\\") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}

func checkHeaders(v *validate.Error, headers map[string]string) {
	for name, value := range headers {
		f := "headers." + name
		switch {
		case !headerName.MatchString(name):
			v.Add(f, "is not a valid header name (printable ASCII, no colon or space)")
		case slices.Contains(forbiddenHeaders, strings.ToLower(name)):
			v.Add(f, "is set by Sendwerk and may not be given as a custom header")
		case strings.ContainsAny(value, "\r\n"):
			v.Add(f, "must not contain line breaks")
		case len(value) > maxHeaderValue:
			v.Add(f, fmt.Sprintf("must be at most %d characters", maxHeaderValue))
		}
	}
}

func checkTags(v *validate.Error, tags []string, metadata map[string]string) {
	if len(tags) > MaxTags {
		v.Add("tags", fmt.Sprintf("at most %d tags", MaxTags))
	}
	for i, t := range tags {
		if !tagPattern.MatchString(t) {
			v.Add(fmt.Sprintf("tags[%d]", i), "must be 1-64 letters, digits or _ . : -")
		}
	}
	if len(metadata) > MaxMetadataKeys {
		v.Add("metadata", fmt.Sprintf("at most %d keys", MaxMetadataKeys))
	}
	for k, val := range metadata {
		if !tagPattern.MatchString(k) {
			v.Add("metadata."+k, "keys must be 1-64 letters, digits or _ . : -")
		}
		if len(val) > MaxMetadataValue {
			v.Add("metadata."+k, fmt.Sprintf("values must be at most %d bytes", MaxMetadataValue))
		}
	}
}

func buildMIME(r *Request, out *rendered, to, cc, replyTo []namedAddr, now time.Time) ([]byte, error) {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	m.SetAddrHeaderFromMailAddress(mail.HeaderFrom, &netmail.Address{Name: out.fromName, Address: out.from.String()})
	m.SetAddrHeaderFromMailAddress(mail.HeaderTo, mailAddrs(to)...)
	if len(cc) > 0 {
		m.SetAddrHeaderFromMailAddress(mail.HeaderCc, mailAddrs(cc)...)
	}
	if len(replyTo) > 0 {
		m.SetAddrHeaderFromMailAddress(mail.HeaderReplyTo, mailAddrs(replyTo)...)
	}
	m.Subject(r.Subject)
	m.SetMessageIDWithValue(out.messageID)
	m.SetDateWithValue(now)
	for name, value := range r.Headers {
		m.SetGenHeader(mail.Header(name), value)
	}
	setBody(m, r)
	for _, a := range r.Attachments {
		opts := []mail.FileOption{}
		if a.ContentType != "" {
			opts = append(opts, mail.WithFileContentType(mail.ContentType(a.ContentType)))
		}
		var err error
		if a.ContentID != "" {
			// RFC 2392: the header carries the id in angle brackets; html refers to cid:<id> without them.
			err = m.EmbedReader(a.Filename, bytes.NewReader(a.Content), append(opts, mail.WithFileContentID("<"+a.ContentID+">"))...)
		} else {
			err = m.AttachReader(a.Filename, bytes.NewReader(a.Content), opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("error attaching %s: %w", a.Filename, err)
		}
	}
	var buf bytes.Buffer
	buf.Grow(renderedSizeHint(r))
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("error rendering message: %w", err)
	}
	return buf.Bytes(), nil
}

// renderedSizeHint guesses a rendered message's size (bodies quoted-printable, attachments
// base64, plus the header), so the buffer is allocated once instead of doubling its way up.
func renderedSizeHint(r *Request) int {
	n := 2048 + (len(r.Text)+len(r.HTML))*11/10
	for _, a := range r.Attachments {
		n += len(a.Content)*4/3 + len(a.Content)/38 + 256
	}
	return n
}

func setBody(m *mail.Msg, r *Request) {
	switch {
	case r.Text != "" && r.HTML != "":
		m.SetBodyString(mail.TypeTextPlain, r.Text)
		m.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	case r.HTML != "":
		m.SetBodyString(mail.TypeTextHTML, r.HTML)
	default:
		m.SetBodyString(mail.TypeTextPlain, r.Text)
	}
}

func mailAddrs(list []namedAddr) []*netmail.Address {
	out := make([]*netmail.Address, len(list))
	for i, a := range list {
		out[i] = &netmail.Address{Name: a.name, Address: a.addr.String()}
	}
	return out
}

func addrStrings(list []namedAddr) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.addr.String()
	}
	return out
}

func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		k := strings.ToLower(s)
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}
