package relay

import (
	"bytes"
	"crypto/tls"
	"net/netip"
	"strings"
	"time"
)

// receivedLine is what the Received header records about a submission (RFC 5321 section
// 4.4; "with" types from RFC 3848).
type receivedLine struct {
	helo string
	ip   netip.Addr
	by   string
	tls  *tls.ConnectionState
	auth bool
	id   string
	rcpt string // only when the message has exactly one recipient: more would disclose Bcc
	at   time.Time
}

// received renders the header, folded, ending in CRLF. Everything the client chose (its
// EHLO name, the recipient) is reduced to characters that cannot break the header.
func received(r receivedLine) []byte {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(heloName(r.helo))
	b.WriteString(" (")
	b.WriteString(addressLiteral(r.ip))
	b.WriteString(")\r\n\tby ")
	b.WriteString(r.by)
	b.WriteString(" (Sendwerk) with ")
	b.WriteString(protocol(r.tls != nil, r.auth))
	if r.tls != nil {
		b.WriteString(" (")
		b.WriteString(tls.VersionName(r.tls.Version))
		b.WriteString(" ")
		b.WriteString(tls.CipherSuiteName(r.tls.CipherSuite))
		b.WriteString(")")
	}
	b.WriteString("\r\n\tid ")
	b.WriteString(r.id)
	if r.rcpt != "" && !strings.ContainsAny(r.rcpt, "\r\n<>;") {
		b.WriteString("\r\n\tfor <")
		b.WriteString(r.rcpt)
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.WriteString(r.at.UTC().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// protocol is ESMTP plus S for TLS and A for an authenticated session (RFC 3848).
func protocol(tls, auth bool) string {
	p := "ESMTP"
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}

func heloName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 255; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

func addressLiteral(ip netip.Addr) string {
	if ip.Is6() {
		return "[IPv6:" + ip.String() + "]"
	}
	return "[" + ip.String() + "]"
}

// normalizeLineEndings turns bare LF into CRLF, as MTAs do with clients that send Unix line
// endings: the stored message, its DKIM signature and the upstream all see proper lines.
// Line feeds are found with bytes.IndexByte, so a message that has none bare (the usual
// case) costs one fast scan and no copy.
func normalizeLineEndings(data []byte) []byte {
	bare := 0
	for i := 0; ; i++ {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || data[i-1] != '\r' {
			bare++
		}
	}
	if bare == 0 {
		return data
	}
	out := make([]byte, 0, len(data)+bare)
	for len(data) > 0 {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return append(out, data...)
		}
		out = append(out, data[:j]...)
		// A line feed at the start of what is left follows the previous one, or nothing.
		if j == 0 || data[j-1] != '\r' {
			out = append(out, '\r')
		}
		out = append(out, '\n')
		data = data[j+1:]
	}
	return out
}
