package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CertOpts describes a certificate to create; zero fields get defaults that suit a server
// on loopback.
type CertOpts struct {
	// Hosts are DNS names or IP addresses; nil means 127.0.0.1 and localhost.
	Hosts []string
	// NotBefore defaults to an hour ago; NotAfter to a day from now. A NotAfter in the
	// past makes an expired certificate.
	NotBefore time.Time
	NotAfter  time.Time
}

// CA is a throwaway certificate authority whose pool clients trust, so tests can check
// that verification succeeds against a proper chain.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a CA valid for a day.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "smtptest CA", Organization: []string{"Sendwerk tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("smtptest: error creating CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("smtptest: error parsing CA certificate: %v", err)
	}
	return &CA{cert: cert, key: key}
}

// Pool returns a pool holding only this CA, for a client's RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Issue creates a server certificate signed by the CA.
func (ca *CA) Issue(t testing.TB, opts CertOpts) tls.Certificate {
	t.Helper()
	return newCert(t, opts, "smtptest server", ca.cert, ca.key)
}

// SelfSigned creates a self-signed server certificate, which clients reject unless they
// skip verification or trust the certificate itself.
func SelfSigned(t testing.TB, opts CertOpts) tls.Certificate {
	t.Helper()
	return newCert(t, opts, "smtptest self-signed", nil, nil)
}

// newCert creates a leaf certificate; a nil parent makes it self-signed.
func newCert(t testing.TB, opts CertOpts, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	key := newKey(t)
	tmpl := leafTemplate(t, opts, name)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("smtptest: error creating certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("smtptest: error parsing certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// leafTemplate fills in defaults and splits hosts into DNS names and IP addresses.
func leafTemplate(t testing.TB, opts CertOpts, name string) *x509.Certificate {
	if opts.Hosts == nil {
		opts.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if opts.NotBefore.IsZero() {
		opts.NotBefore = time.Now().Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Sendwerk tests"}},
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// newKey creates a P-256 key: fast enough to make one per test.
func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("smtptest: error generating key: %v", err)
	}
	return key
}

// newSerial returns a random certificate serial number.
func newSerial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("smtptest: error generating serial: %v", err)
	}
	return n
}

// PEM returns the CA certificate PEM-encoded, for programs configured with a CA file.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}
