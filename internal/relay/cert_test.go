package relay

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCertReloader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, created, err := EnsureSelfSigned(dir, "old.example")
	require.NoError(t, err)
	require.True(t, created)
	_, _, created, err = EnsureSelfSigned(dir, "old.example")
	require.NoError(t, err)
	require.False(t, created, "a valid certificate is kept")

	logs := &syncBuffer{}
	r, err := NewCertReloader(certFile, keyFile, slog.New(slog.NewJSONHandler(logs, nil)))
	require.NoError(t, err)
	now := time.Now()
	r.NowFunc = func() time.Time { return now }
	served := func() *x509.Certificate {
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		return c.Leaf
	}
	require.Equal(t, "old.example", served().Subject.CommonName)

	// A renewal writes new files; the next handshake after the check interval serves them.
	other := t.TempDir()
	newCert, newKey, _, err := EnsureSelfSigned(other, "new.example")
	require.NoError(t, err)
	copyFile(t, newKey, keyFile)
	copyFile(t, newCert, certFile)
	require.Equal(t, "old.example", served().Subject.CommonName, "files are looked at most every CheckInterval")
	now = now.Add(6 * time.Second)
	require.Equal(t, "new.example", served().Subject.CommonName)
	require.Contains(t, logs.String(), "tls certificate reloaded")

	// A half-written renewal (certificate without its key) keeps the working pair.
	third := t.TempDir()
	thirdCert, _, _, err := EnsureSelfSigned(third, "third.example")
	require.NoError(t, err)
	copyFile(t, thirdCert, certFile)
	now = now.Add(6 * time.Second)
	require.Equal(t, "new.example", served().Subject.CommonName)
	require.Contains(t, logs.String(), "do not load; serving the previous certificate")

	_, err = NewCertReloader(filepath.Join(dir, "missing.pem"), keyFile, slog.Default())
	require.ErrorContains(t, err, "missing.pem")
}

// TestRelayServesRenewedCertificate proves the reload end to end: a client handshaking
// after the files changed sees the new certificate without a restart.
func TestRelayServesRenewedCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _, err := EnsureSelfSigned(dir, testHostname)
	require.NoError(t, err)
	r, err := NewCertReloader(certFile, keyFile, slog.Default())
	require.NoError(t, err)
	r.CheckInterval = 0
	b := setup(t, func(c *Config) { c.TLS = r.TLSConfig() })
	leaf := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", b.srv.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0]
	}
	first := leaf()
	other := t.TempDir()
	newCert, newKey, _, err := EnsureSelfSigned(other, testHostname)
	require.NoError(t, err)
	copyFile(t, newKey, keyFile)
	copyFile(t, newCert, certFile)
	require.NotEqual(t, first.SerialNumber, leaf().SerialNumber)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	writeFile(t, to, b)
	// Make the change visible even on file systems with coarse modification times.
	later := time.Now().Add(time.Duration(len(b)) * time.Millisecond)
	require.NoError(t, os.Chtimes(to, later, later))
}
