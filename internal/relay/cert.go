package relay

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CertReloader serves a certificate from PEM files and picks up new files without a
// restart (a renewal by certbot or cert-manager): at a handshake, at most every
// CheckInterval, it compares the files' modification times and sizes and loads them again
// when they changed. A pair that fails to load (say, the key not yet written) keeps the
// previous certificate in service and is tried again at the next check.
type CertReloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	// CheckInterval is the least time between two looks at the files.
	CheckInterval time.Duration
	NowFunc       func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// NewCertReloader loads the pair once; it fails when the files do not hold a valid pair.
func NewCertReloader(certFile, keyFile string, logger *slog.Logger) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, logger: logger, CheckInterval: 5 * time.Second, NowFunc: time.Now}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = cert, stamp, r.NowFunc()
	return r, nil
}

// TLSConfig is a server configuration serving the reloaded certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
}

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.NowFunc()
	if now.Sub(r.checked) < r.CheckInterval {
		return r.cert, nil
	}
	r.checked = now
	stamp, err := r.fileStamp()
	if err != nil || stamp == r.stamp {
		return r.cert, nil
	}
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		r.logger.Warn("tls certificate files changed but do not load; serving the previous certificate", "cert_file", r.certFile, "error", err)
		return r.cert, nil
	}
	r.cert, r.stamp = cert, stamp
	r.logger.Info("tls certificate reloaded", "cert_file", r.certFile, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	return r.cert, nil
}

// Leaf is the certificate served now.
func (r *CertReloader) Leaf() *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert.Leaf
}

func (r *CertReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("error reading TLS file: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("error loading TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("error parsing TLS certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// EnsureSelfSigned returns the paths of a self-signed certificate for hostname in dir,
// creating it when it is missing or expires within a week. It is for development only:
// mail servers must be told to skip verification (or to trust this file).
func EnsureSelfSigned(dir, hostname string) (certFile, keyFile string, created bool, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// A missing, unreadable, expiring or other-host pair is replaced.
	if c, err := loadPair(certFile, keyFile); err == nil && time.Until(c.Leaf.NotAfter) > 7*24*time.Hour && c.Leaf.VerifyHostname(hostname) == nil {
		return certFile, keyFile, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("error creating %s: %w", dir, err)
	}
	certPEM, keyPEM, err := selfSigned(hostname)
	if err != nil {
		return "", "", false, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, fmt.Errorf("error writing %s: %w", keyFile, err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", false, fmt.Errorf("error writing %s: %w", certFile, err)
	}
	return certFile, keyFile, true, nil
}

// selfSigned makes an RSA-2048 certificate (the key type every mail client accepts) for
// hostname, localhost and the loopback addresses, valid for a year.
func selfSigned(hostname string) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("error generating TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, fmt.Errorf("error generating serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Sendwerk development"}},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(hostname); ip != nil {
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, append(tmpl.IPAddresses, ip)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("error creating TLS certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("error encoding TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}
