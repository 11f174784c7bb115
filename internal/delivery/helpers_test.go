package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// testUser and testPassword are the account of servers in these tests; the password is
// distinctive so that a leak is found by a plain substring search.
const (
	testUser     = "mailer@example.test"
	testPassword = "Zq9-leak-canary-7Hx"
)

// testUsers is the Users map for smtptest servers with AUTH.
func testUsers() map[string]string { return map[string]string{testUser: testPassword} }

// settingsFor points Settings at a test server with short timeouts.
func settingsFor(host string, port int, sec delivery.Security) delivery.Settings {
	return delivery.Settings{
		Host:           host,
		Port:           port,
		Security:       sec,
		AuthMechanism:  delivery.AuthNone,
		HELOName:       "sendwerk.test",
		ConnectTimeout: 2 * time.Second,
		CommandTimeout: 2 * time.Second,
	}
}

// serverSettings points Settings at srv, trusting its certificate.
func serverSettings(srv *smtptest.Server, sec delivery.Security) delivery.Settings {
	s := settingsFor(srv.Host(), srv.Port(), sec)
	s.RootCAs = srv.CertPool()
	return s
}

// withAuth adds the test account with mech.
func withAuth(s delivery.Settings, mech delivery.AuthMechanism) delivery.Settings {
	s.AuthMechanism, s.Username, s.Password = mech, testUser, testPassword
	return s
}

// requireNoSecret checks every rendering of values for the secret: Error(), %v, %+v,
// %#v and JSON.
func requireNoSecret(t *testing.T, secret string, values ...any) {
	t.Helper()
	for _, v := range values {
		if err, ok := v.(error); ok && err != nil {
			require.NotContains(t, err.Error(), secret)
		}
		for _, format := range []string{"%v", "%+v", "%#v"} {
			require.NotContains(t, fmt.Sprintf(format, v), secret)
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NotContains(t, string(b), secret)
	}
}

// stepByName finds a probe step.
func stepByName(t *testing.T, res delivery.ProbeResult, name delivery.StepName) delivery.ProbeStep {
	t.Helper()
	for _, st := range res.Steps {
		if st.Name == name {
			return st
		}
	}
	require.Failf(t, "step missing", "no step %q in %+v", name, res.Steps)
	return delivery.ProbeStep{}
}

// stepStatuses lists "name=status" in order, for compact assertions.
func stepStatuses(res delivery.ProbeResult) []string {
	var out []string
	for _, st := range res.Steps {
		out = append(out, fmt.Sprintf("%s=%s", st.Name, st.Status))
	}
	return out
}

// newDNSResolver starts a loopback DNS server answering every query with rcode (or not
// at all when silent) and returns a resolver that uses only it.
func newDNSResolver(t *testing.T, rcode dnsmessage.RCode, silent bool) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	go serveDNS(pc, rcode, silent)
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// serveDNS answers queries with an empty response carrying rcode.
func serveDNS(pc net.PacketConn, rcode dnsmessage.RCode, silent bool) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if silent {
			continue
		}
		var p dnsmessage.Parser
		hdr, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		questions, err := p.AllQuestions()
		if err != nil {
			continue
		}
		msg := dnsmessage.Message{
			Header:    dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RCode: rcode},
			Questions: questions,
		}
		if out, err := msg.Pack(); err == nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

// newRawServer accepts TCP connections and hands each to handle, for peers that are not
// SMTP servers at all (an HTTP server, a server that hangs up).
func newRawServer(t *testing.T, handle func(net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}
