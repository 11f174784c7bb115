// Package postfixtest runs a private Postfix instance on loopback for interoperability
// tests: an MTA nobody here wrote, with STARTTLS and Cyrus SASL (sasldb) logins, relaying
// everything it accepts to a relay host of the test's choosing. It never touches the
// machine's own Postfix configuration; everything lives in a temporary directory.
package postfixtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Domain is the SASL realm and the instance's host name.
const Domain = "postfix.test"

// Opts configure an instance.
type Opts struct {
	// RelayHost ("host:port") receives every message Postfix accepts; empty defers them.
	RelayHost string
	// Users are SASL logins (user name without realm → password); clients log in as
	// "user@postfix.test" or "user".
	Users map[string]string
	// RelayHostTLS makes Postfix use STARTTLS (opportunistically) and send
	// RelayHostUser/RelayHostPassword when relaying.
	RelayHostTLS      bool
	RelayHostUser     string
	RelayHostPassword string
	// MainCF is appended to main.cf as it is (in main.cf the last setting of a parameter
	// wins), e.g. a documented snippet; "$config_directory" names the instance's etc dir.
	MainCF string
}

// Instance is a running Postfix.
type Instance struct {
	Dir  string
	Port int
	t    testing.TB
}

// Start configures and starts an instance, stopped at test cleanup. It needs root and
// Debian's postfix, sasl2-bin and libsasl2-modules (make setup installs them).
func Start(t testing.TB, opts Opts) *Instance {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("postfixtest: Postfix must be started as root (the tests run as root in CI)")
	}
	for _, bin := range []string{"postfix", "saslpasswd2", "postconf"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("postfixtest: %s not found; run make setup (Debian packages postfix, sasl2-bin, libsasl2-modules)", bin)
		}
	}
	// One instance at a time: the two runs in which an instance never picked up or logged
	// anything both had several instances starting together, and a wedged instance then
	// also hung `postfix stop`.
	running.Lock()
	t.Cleanup(running.Unlock) // registered first, so it runs after stop
	dir, err := os.MkdirTemp("", "pf")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	in := &Instance{Dir: dir, Port: freePort(t), t: t}
	in.configure(opts)
	// The port was free when chosen; a server of a parallel test may take it before Postfix
	// binds it. Then Postfix's master dies at start-up: choose another port and start again.
	for try := 1; ; try++ {
		out, err := in.command(30*time.Second, "postfix", "-c", in.EtcDir(), "start")
		if err == nil {
			break
		}
		if try == 3 || !strings.Contains(in.Log(), "Address already in use") {
			t.Fatalf("postfixtest: postfix start: %v: %s\n%s", err, out, in.Log())
		}
		in.Port = freePort(t)
		in.write(filepath.Join(in.EtcDir(), "master.cf"), in.masterCF())
	}
	t.Cleanup(in.stop)
	in.waitListening()
	return in
}

// EtcDir is the instance's configuration directory ($config_directory, MAIL_CONFIG).
func (in *Instance) EtcDir() string { return filepath.Join(in.Dir, "etc") }

// Addr is "127.0.0.1:port" of the submission listener.
func (in *Instance) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port)) }

// Log returns Postfix's log so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(filepath.Join(in.Dir, "maillog"))
	return string(b)
}

// Sendmail hands a message to Postfix's sendmail(1), as a local program would.
func (in *Instance) Sendmail(t testing.TB, from string, to []string, message []byte) {
	t.Helper()
	args := append([]string{"-C", filepath.Join(in.Dir, "etc"), "-f", from, "--"}, to...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sendmail", args...)
	cmd.Stdin = bytes.NewReader(message)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+filepath.Join(in.Dir, "etc"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postfixtest: sendmail: %v\n%s\n%s", err, out, in.Log())
	}
}

// Flush asks Postfix to retry deferred mail now.
func (in *Instance) Flush() { in.run("flush") }

func (in *Instance) configure(opts Opts) {
	etc := filepath.Join(in.Dir, "etc")
	for _, d := range []string{filepath.Join(etc, "sasl"), filepath.Join(in.Dir, "queue"), filepath.Join(in.Dir, "data")} {
		in.must(os.MkdirAll(d, 0o755))
	}
	in.must(os.Chmod(in.Dir, 0o755))
	pf, err := user.Lookup("postfix")
	in.must(err)
	uid, _ := strconv.Atoi(pf.Uid)
	in.must(os.Chown(filepath.Join(in.Dir, "data"), uid, -1))
	in.writeCert(etc)
	in.write(filepath.Join(etc, "main.cf"), in.mainCF(opts))
	in.write(filepath.Join(etc, "master.cf"), in.masterCF())
	in.write(filepath.Join(etc, "sasl", "smtpd.conf"), fmt.Sprintf(
		"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s\n", filepath.Join(etc, "sasldb2")))
	if opts.RelayHostUser != "" {
		in.write(filepath.Join(etc, "relay_passwd"), fmt.Sprintf("[%s]:%s %s:%s\n",
			hostOf(opts.RelayHost), portOf(opts.RelayHost), opts.RelayHostUser, opts.RelayHostPassword))
		in.postmap(filepath.Join(etc, "relay_passwd"))
	}
	db := filepath.Join(etc, "sasldb2")
	for name, pw := range opts.Users {
		cmd := exec.Command("saslpasswd2", "-p", "-c", "-f", db, "-u", Domain, name)
		cmd.Stdin = strings.NewReader(pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			in.t.Fatalf("postfixtest: saslpasswd2: %v: %s", err, out)
		}
	}
	if len(opts.Users) > 0 {
		in.must(os.Chown(db, 0, int(mustGroup(in.t, "postfix"))))
		in.must(os.Chmod(db, 0o640))
	}
}

func (in *Instance) mainCF(opts Opts) string {
	lines := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(in.Dir, "queue"),
		"data_directory = " + filepath.Join(in.Dir, "data"),
		"command_directory = /usr/sbin",
		"daemon_directory = /usr/lib/postfix/sbin",
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = " + Domain,
		"mydomain = " + Domain,
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"maillog_file = " + filepath.Join(in.Dir, "maillog"),
		"maillog_file_prefixes = " + in.Dir,
		"alias_maps =",
		"alias_database =",
		"local_transport = error:local delivery is disabled",
		"smtpd_tls_cert_file = " + filepath.Join(in.Dir, "etc", "cert.pem"),
		"smtpd_tls_key_file = " + filepath.Join(in.Dir, "etc", "key.pem"),
		"smtpd_tls_security_level = may",
		"smtpd_tls_auth_only = yes",
		"smtpd_sasl_auth_enable = yes",
		"smtpd_sasl_type = cyrus",
		"smtpd_sasl_path = smtpd",
		"smtpd_sasl_local_domain = " + Domain,
		"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject",
		"smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject",
		"smtp_tls_security_level = none",
		"maximal_backoff_time = 10s",
		"minimal_backoff_time = 1s",
		"queue_run_delay = 1s",
	}
	if opts.RelayHost != "" {
		lines = append(lines, fmt.Sprintf("relayhost = [%s]:%s", hostOf(opts.RelayHost), portOf(opts.RelayHost)))
	}
	if opts.RelayHostTLS {
		lines = append(lines, "smtp_tls_security_level = encrypt", "smtp_tls_CAfile =")
	}
	if opts.RelayHostUser != "" {
		lines = append(lines, "smtp_sasl_auth_enable = yes",
			"smtp_sasl_password_maps = hash:"+filepath.Join(in.Dir, "etc", "relay_passwd"),
			"smtp_sasl_security_options = noanonymous", "smtp_sasl_tls_security_options = noanonymous")
	}
	if opts.MainCF != "" {
		lines = append(lines, strings.TrimSpace(opts.MainCF))
	}
	return strings.Join(lines, "\n") + "\n"
}

// masterCF wakes pickup every second (Debian's default is 60 s): sendmail normally nudges
// it through a FIFO, and a nudge lost while the instance starts would otherwise leave a
// test's message in the maildrop for a minute.
func (in *Instance) masterCF() string {
	return fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n - n 1 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`, in.Port)
}

// running serialises instances within a test binary.
var running sync.Mutex

func (in *Instance) run(action string) {
	out, err := in.command(30*time.Second, "postfix", "-c", filepath.Join(in.Dir, "etc"), action)
	if err != nil {
		in.t.Fatalf("postfixtest: postfix %s: %v: %s\n%s", action, err, out, in.Log())
	}
}

// command runs a Postfix tool in its own process group and kills the group when it
// outlives timeout (postfix-script can block on a wedged log socket).
func (in *Instance) command(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

func (in *Instance) postmap(file string) {
	if out, err := exec.Command("postmap", "-c", filepath.Join(in.Dir, "etc"), file).CombinedOutput(); err != nil {
		in.t.Fatalf("postfixtest: postmap: %v: %s", err, out)
	}
}

func (in *Instance) waitListening() {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", in.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.t.Fatalf("postfixtest: postfix did not listen on %s\n%s", in.Addr(), in.Log())
}

// stop stops the master and waits until its pid is gone, so the next test's instance and
// the temporary directory's removal do not race it.
func (in *Instance) stop() {
	pidFile := filepath.Join(in.Dir, "queue", "pid", "master.pid")
	b, _ := os.ReadFile(pidFile)
	_, _ = in.command(15*time.Second, "postfix", "-c", filepath.Join(in.Dir, "etc"), "stop")
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && alive(pid) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			// The master leads its own process group (it calls setsid): take all of it.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(in.Dir)
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func (in *Instance) writeCert(etc string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	in.must(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: Domain},
		DNSNames:     []string{Domain, "localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	in.must(err)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	in.must(err)
	in.write(filepath.Join(etc, "cert.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	in.write(filepath.Join(etc, "key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
	in.must(os.Chmod(filepath.Join(etc, "key.pem"), 0o600))
}

func (in *Instance) write(path, content string) { in.must(os.WriteFile(path, []byte(content), 0o644)) }

func (in *Instance) must(err error) {
	if err != nil {
		in.t.Helper()
		in.t.Fatalf("postfixtest: %v", err)
	}
}

func mustGroup(t testing.TB, name string) int {
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func hostOf(hostport string) string { h, _, _ := net.SplitHostPort(hostport); return h }
func portOf(hostport string) string { _, p, _ := net.SplitHostPort(hostport); return p }
