package dnstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Unbound is a real recursive resolver (unbound, from the Debian package of that name) on
// a loopback port that reaches test zones through stub zones: an NS record cannot carry a
// port, a stub-addr can, so a delegated sub-zone on another loopback server resolves the
// way it would on the internet.
type Unbound struct {
	Addr string
}

// NewUnbound starts unbound with one stub zone per entry of stubs (zone -> "host:port")
// and waits until it answers with recursion available.
func NewUnbound(t testing.TB, stubs map[string]string) *Unbound {
	t.Helper()
	dir := t.TempDir()
	addr := freeUDPPort(t)
	host, port, _ := net.SplitHostPort(addr)
	zones := make([]string, 0, len(stubs))
	for z := range stubs {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	var conf strings.Builder
	fmt.Fprintf(&conf, "server:\n  interface: %s@%s\n  port: %s\n  do-not-query-localhost: no\n", host, port, port)
	fmt.Fprintf(&conf, "  username: \"\"\n  chroot: \"\"\n  directory: %q\n  pidfile: %q\n", dir, filepath.Join(dir, "unbound.pid"))
	conf.WriteString("  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  do-ip6: no\n  module-config: \"iterator\"\n")
	conf.WriteString("  access-control: 127.0.0.0/8 allow\n  cache-max-ttl: 0\n  cache-max-negative-ttl: 0\n")
	for _, z := range zones {
		fmt.Fprintf(&conf, "  local-zone: %q nodefault\n", z)
	}
	for _, z := range zones {
		h, p, _ := net.SplitHostPort(stubs[z])
		fmt.Fprintf(&conf, "stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", z, h, p)
	}
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatalf("dnstest: writing unbound config: %v", err)
	}
	cmd := exec.Command("unbound", "-d", "-c", path)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("dnstest: starting unbound (install the Debian package unbound): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	m := new(dns.Msg).SetQuestion(dns.Fqdn(zones[0]), dns.TypeSOA)
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, _, err := c.Exchange(m, addr); err == nil && resp.RecursionAvailable {
			return &Unbound{Addr: addr}
		}
	}
	t.Fatalf("dnstest: unbound did not answer on %s: %s", addr, log.String())
	return nil
}
