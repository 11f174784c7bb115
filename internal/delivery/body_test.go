package delivery

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"testing"

	"github.com/stretchr/testify/require"
)

// dotWritten is what textproto's dot writer writes for raw.
func dotWritten(t *testing.T, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	dw := textproto.NewWriter(bw).DotWriter()
	_, err := dw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, dw.Close())
	return out.Bytes()
}

func bodyWritten(t *testing.T, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	flushes := 0
	require.NoError(t, writeBody(textproto.NewWriter(bw), raw, func() error { flushes++; return nil }))
	require.Equal(t, 1, flushes, "the deadline is set once, before the flush")
	return out.Bytes()
}

// TestWriteBodyIsTheDotWriters: the fast path writes exactly what textproto's dot writer
// writes, for messages as stored and for every kind of input it must leave to the dot writer.
func TestWriteBodyIsTheDotWriters(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		raw   string
		plain bool
	}{
		"stored message":       {"From: a@b.example\r\nSubject: hi\r\n\r\nHello,\r\nbye\r\n", true},
		"leading dot":          {"Subject: hi\r\n\r\n.hidden line\r\n", false},
		"dot at start":         {".\r\n", false},
		"bare LF":              {"Subject: hi\n\nHello\n", false},
		"bare CR":              {"Subject: hi\r\n\r\nHel\rlo\r\n", false},
		"CR CR LF":             {"Subject: hi\r\r\n\r\nHello\r\n", false},
		"no final line end":    {"Subject: hi\r\n\r\nHello", false},
		"final CR only":        {"Subject: hi\r\n\r\nHello\r", false},
		"empty":                {"", false},
		"dot inside a line":    {"Subject: a.b\r\n\r\nx.y .z\r\n", true},
		"dot after CR no LF":   {"a\r.b\r\n", false},
		"only CRLF":            {"\r\n", true},
		"long plain":           {string(bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"), 100)), true},
		"long with a dot line": {string(bytes.Repeat([]byte("line\r\n"), 900)) + ".\r\n" + "end\r\n", false},
	}
	for name, c := range cases {
		require.Equal(t, c.plain, plainBody([]byte(c.raw)), name)
		require.Equal(t, string(dotWritten(t, []byte(c.raw))), string(bodyWritten(t, []byte(c.raw))), name)
	}
	// Random bodies over the bytes that matter.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\r\n.a")
	for i := range 5000 {
		raw := make([]byte, rng.IntN(40))
		for j := range raw {
			raw[j] = alphabet[rng.IntN(len(alphabet))]
		}
		require.Equal(t, string(dotWritten(t, raw)), string(bodyWritten(t, raw)), "random body %d: %q", i, raw)
	}
}
