package relay

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzSession feeds arbitrary bytes to a live relay session (real database, real
// pipeline) and checks that the listener survives: after every input a new client still
// gets a banner and an EHLO answer, and no panic was recovered. "{{AUTH}}" in an input
// becomes a valid AUTH PLAIN response, so the fuzzer reaches the logged-in states.
//
// `go test` runs the seeds below; `go test -fuzz=FuzzSession ./internal/relay/` fuzzes.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO a\r\nQUIT\r\n",
		"EHLO a\r\nAUTH PLAIN {{AUTH}}\r\nMAIL FROM:<noreply@acme.example>\r\nRCPT TO:<a@customer.example>\r\nDATA\r\nFrom: noreply@acme.example\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nAUTH PLAIN {{AUTH}}\r\nMAIL FROM:<noreply@acme.example> SIZE=10 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<ü@ä.example>\r\nDATA\r\n\r\n.\r\n",
		"EHLO a\r\nAUTH PLAIN {{AUTH}}\r\nMAIL FROM:<noreply@acme.example>\r\nRCPT TO:<a@customer.example>\r\nDATA\r\nno header\nbare\rcr\x00nul\r\n..\r\n.\r\n",
		"EHLO a\r\nAUTH PLAIN {{AUTH}}\r\nMAIL FROM:<noreply@acme.example>\r\nRCPT TO:<a@customer.example>\r\nBDAT 12 LAST\r\nFrom: a@b.c\r\n",
		"EHLO a\r\nAUTH LOGIN\r\nc3ctbm9ib2R5\r\ncGFzcw==\r\nAUTH LOGIN c3ctbm9ib2R5\r\n*\r\n",
		"EHLO a\r\nAUTH PLAIN\r\n=\r\nAUTH PLAIN AAAA\r\nAUTH CRAM-MD5\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"HELO\r\nEHLO\r\nMAIL FROM:\r\nRCPT TO:\r\nDATA\r\nRSET\r\nNOOP\r\nVRFY x\r\nEXPN x\r\nHELP\r\n",
		"\x00\xff\xfe\r\n\n\n\r\r\r" + strings.Repeat("A", 2100) + "\r\n",
		"EHLO a\r\nAUTH PLAIN {{AUTH}}\r\nMAIL FROM:<noreply@acme.example> AUTH=<> RET=FULL ENVID=x\r\nRCPT TO:<a@customer.example> NOTIFY=NEVER\r\n",
	} {
		f.Add([]byte(seed))
	}
	b := setup(f, func(c *Config) {
		c.AllowInsecureAuth = true
		c.Timeout = time.Second
		c.MaxConnsPerIP = 10000
		c.AuthFailureLimit = 1 << 30
	})
	auth := []byte(plain(b.username, b.password))
	f.Fuzz(func(t *testing.T, input []byte) {
		input = bytes.ReplaceAll(input, []byte("{{AUTH}}"), auth)
		// A hang becomes a crash the fuzzer records with its input.
		hang := time.AfterFunc(15*time.Second, func() { panic(fmt.Sprintf("HANG on %q", input)) })
		defer hang.Stop()
		conn, err := net.Dial("tcp", b.srv.Addr())
		require.NoError(t, err)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write(input)
		_ = conn.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, conn) // until the server hangs up
		_ = conn.Close()

		alive := dialRaw(t, b.srv.Addr())
		alive.expectCmd(250, "EHLO alive.example")
		alive.expectCmd(221, "QUIT")
		require.NotContains(t, b.logs.String(), `"detail":"panic`, "a panic was recovered while serving")
	})
}
