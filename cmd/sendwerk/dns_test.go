package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/dnstest"
)

const dnsTestZone = `
$TTL 300
example.com.      IN TXT "v=spf1 include:_spf.example.com -all"
_spf.example.com. IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
`

func runDNSForTest(t *testing.T, args ...string) (int, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runDNS(context.Background(), args, &stdout, &stderr)
	return code, &stdout, &stderr
}

func TestRunDNS(t *testing.T) {
	t.Parallel()
	srv := dnstest.NewServer(t, dnsTestZone)

	t.Run("PrintsPassAsJSON", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runDNSForTest(t, "spf", "--domain", "example.com", "--ip", "192.0.2.7", "--dns", srv.Addr())
		require.Equal(t, 0, code, stderr.String())
		var res dnscheck.SPFResult
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &res))
		require.Equal(t, dnscheck.SPFPass, res.Result)
		require.Equal(t, 1, res.DNSLookups)
		require.Equal(t, []string{"example.com", "_spf.example.com"}, res.IncludePath)
		require.Len(t, res.Trace, 2)
		require.Contains(t, stdout.String(), "\n  \"result\": \"pass\"")
	})

	t.Run("ExitsZeroOnFail", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := runDNSForTest(t, "spf", "--sender", "bob@example.com", "--helo", "mx.example.org", "--ip", "203.0.113.9", "--dns", srv.Addr())
		require.Equal(t, 0, code)
		var res dnscheck.SPFResult
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &res))
		require.Equal(t, dnscheck.SPFFail, res.Result)
		require.Equal(t, "bob@example.com", res.Sender)
		require.NotEmpty(t, res.Explanation)
	})

	t.Run("RejectsUsageErrors", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{},
			{"dkim"},
			{"spf", "--domain", "example.com"},
			{"spf", "--domain", "example.com", "--ip", "not-an-ip"},
			{"spf", "--ip", "192.0.2.7"},
			{"spf", "--bogus"},
			{"spf", "--domain", "example.com", "--ip", "192.0.2.7", "extra"},
		} {
			code, _, stderr := runDNSForTest(t, args...)
			require.Equal(t, 2, code, "%v", args)
			require.NotEmpty(t, stderr.String(), "%v", args)
		}
	})

	t.Run("PrintsHelp", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := runDNSForTest(t, "spf", "-h")
		require.Equal(t, 0, code)
		require.Contains(t, stdout.String(), "--ip")
	})
}
