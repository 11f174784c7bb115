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

// Knot is a real authoritative server (Knot DNS's knotd, from the Debian package knot)
// on a loopback port, for tests that must not depend on our own DNS code reading
// zones the way we wrote them.
type Knot struct {
	Dir  string
	Addr string
}

// KnotConfig writes a knotd configuration serving zones (origin -> zone-file text, with
// SOA and NS) from dir on listen ("127.0.0.1@PORT").
func KnotConfig(dir, listen string, zones map[string]string) (string, error) {
	var conf strings.Builder
	fmt.Fprintf(&conf, "server:\n    rundir: %q\n    user: root:root\n    listen: %s\n", dir, listen)
	fmt.Fprintf(&conf, "log:\n  - target: stderr\n    any: warning\n")
	fmt.Fprintf(&conf, "database:\n    storage: %q\n", dir)
	fmt.Fprintf(&conf, "template:\n  - id: default\n    storage: %q\n    file: \"%%s.zone\"\n", dir)
	conf.WriteString("zone:\n")
	origins := make([]string, 0, len(zones))
	for origin := range zones {
		origins = append(origins, origin)
	}
	sort.Strings(origins)
	for _, origin := range origins {
		fmt.Fprintf(&conf, "  - domain: %s\n", origin)
		if err := os.WriteFile(filepath.Join(dir, origin+".zone"), []byte(zones[origin]), 0o644); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "knot.conf")
	return path, os.WriteFile(path, []byte(conf.String()), 0o644)
}

// NewKnot starts knotd for zones and waits until it answers the SOA of every zone.
func NewKnot(t testing.TB, zones map[string]string) *Knot {
	t.Helper()
	dir := t.TempDir()
	addr := freeUDPPort(t)
	host, port, _ := net.SplitHostPort(addr)
	conf, err := KnotConfig(dir, host+"@"+port, zones)
	if err != nil {
		t.Fatalf("dnstest: writing knot config: %v", err)
	}
	cmd := exec.Command("knotd", "-c", conf)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("dnstest: starting knotd (install the Debian package knot): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for origin := range zones {
		waitSOA(t, addr, origin, &log)
	}
	return &Knot{Dir: dir, Addr: addr}
}

func waitSOA(t testing.TB, addr, origin string, log *strings.Builder) {
	t.Helper()
	m := new(dns.Msg).SetQuestion(dns.Fqdn(origin), dns.TypeSOA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, _, err := c.Exchange(m, addr); err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("dnstest: knotd did not serve %s on %s: %s", origin, addr, log.String())
}

// freeUDPPort returns a loopback address whose UDP and TCP ports were free a moment ago.
func freeUDPPort(t testing.TB) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err == nil {
			_ = pc.Close()
			return addr
		}
	}
	t.Fatal("dnstest: no free port")
	return ""
}
