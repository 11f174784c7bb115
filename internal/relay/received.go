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
	// tlsVersion and tlsCipher name the session's TLS; a zero version: none.
	tlsVersion, tlsCipher uint16
	auth                  bool
	id                    string
	rcpt                  string // only when the message has exactly one recipient: more would disclose Bcc
	at                    time.Time
}

// received renders the header, folded, ending in CRLF. Everything the client chose (its
// EHLO name, the recipient) is reduced to characters that cannot break the header.
func received(r receivedLine) []byte { return appendReceived(nil, r) }

// appendReceived appends the header as received renders it to b; with room in b it
// allocates nothing (the relay renders each message's line into a buffer on its stack).
func appendReceived(b []byte, r receivedLine) []byte {
	b = append(b, "Received: from "...)
	b = appendHeloName(b, r.helo)
	b = append(b, " ("...)
	b = appendAddressLiteral(b, r.ip)
	b = append(b, ")\r\n\tby "...)
	b = append(b, r.by...)
	b = append(b, " (Sendwerk) with ESMTP"...)
	if r.tlsVersion != 0 {
		b = append(b, 'S') // RFC 3848
	}
	if r.auth {
		b = append(b, 'A')
	}
	if r.tlsVersion != 0 {
		b = append(b, " ("...)
		b = append(b, tls.VersionName(r.tlsVersion)...)
		b = append(b, ' ')
		b = append(b, cipherSuiteName(r.tlsCipher)...)
		b = append(b, ')')
	}
	b = append(b, "\r\n\tid "...)
	b = append(b, r.id...)
	if r.rcpt != "" && !strings.ContainsAny(r.rcpt, "\r\n<>;") {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, r.rcpt...)
		b = append(b, '>')
	}
	b = append(b, "; "...)
	b = r.at.UTC().AppendFormat(b, time.RFC1123Z)
	return append(b, "\r\n"...)
}

// cipherSuiteNames: tls.CipherSuiteName builds the list of every suite on each call.
var cipherSuiteNames = func() map[uint16]string {
	m := map[uint16]string{}
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		m[c.ID] = c.Name
	}
	return m
}()

func cipherSuiteName(id uint16) string {
	if name, ok := cipherSuiteNames[id]; ok {
		return name
	}
	return tls.CipherSuiteName(id)
}

// appendHeloName keeps at most 255 characters of the EHLO name that cannot break the
// header; none is "unknown".
func appendHeloName(b []byte, s string) []byte {
	start := len(b)
	for i := 0; i < len(s) && len(b)-start < 255; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0 {
			b = append(b, c)
		}
	}
	if len(b) == start {
		b = append(b, "unknown"...)
	}
	return b
}

func appendAddressLiteral(b []byte, ip netip.Addr) []byte {
	b = append(b, '[')
	switch {
	case !ip.IsValid():
		b = append(b, ip.String()...)
	case ip.Is6():
		b = append(b, "IPv6:"...)
		b = ip.AppendTo(b)
	default:
		b = ip.AppendTo(b)
	}
	return append(b, ']')
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
