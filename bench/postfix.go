package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// postfixInstance is a private Postfix on loopback (never the machine's /etc/postfix) that
// relays everything it accepts to the sink: the peer Sendwerk is measured against. Its
// configuration is Debian's defaults plus what a private instance needs; nothing is tuned.
type postfixInstance struct {
	dir  string
	port int
	// submitPort is the submission service: STARTTLS required, then SASL AUTH.
	submitPort int
}

const postfixDomain = "postfix.bench.example"

// startPostfix starts the instance inside cgroup (when set) so every Postfix process,
// including the short-lived ones, is counted.
func startPostfix(dir string, relay *net.TCPAddr, cg *cpuGroup) (*postfixInstance, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("postfix must be started as root")
	}
	for _, bin := range []string{"postfix", "smtp-source"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not found; run make setup (Debian package postfix)", bin)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	submitPort, err := freePort()
	if err != nil {
		return nil, err
	}
	in := &postfixInstance{dir: dir, port: port, submitPort: submitPort}
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(pf.Uid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		return nil, err
	}
	main := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"command_directory = /usr/sbin",
		"daemon_directory = /usr/lib/postfix/sbin",
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = " + postfixDomain,
		"mydomain = " + postfixDomain,
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"alias_maps =",
		"alias_database =",
		"local_transport = error:local delivery is disabled",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtp_tls_security_level = none",
		fmt.Sprintf("relayhost = [%s]:%d", relay.IP, relay.Port),
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(main), 0o644); err != nil {
		return nil, err
	}
	master := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
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
`, port)
	submission, err := addPostfixSubmission(etc, submitPort)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(master+submission), 0o644); err != nil {
		return nil, err
	}
	cmd := cg.command("postfix", "-c", etc, "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("postfix start: %v: %s\n%s", err, out, in.log())
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", in.addr(), 200*time.Millisecond); err == nil {
			c.Close()
			return in, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.stop()
	return nil, fmt.Errorf("postfix did not listen on %s\n%s", in.addr(), in.log())
}

func (in *postfixInstance) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.port)) }

func (in *postfixInstance) submissionAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.submitPort))
}

// chownPostfix gives a file to the postfix user, as which smtpd runs.
func chownPostfix(path string) error {
	pf, err := user.Lookup("postfix")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	return os.Chown(path, uid, gid)
}

func (in *postfixInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(in.dir, "maillog"))
	return string(b)
}

// queued counts messages still in Postfix's queues.
func (in *postfixInstance) queued() int {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred", "hold", "maildrop"} {
		_ = filepath.WalkDir(filepath.Join(in.dir, "queue", q), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// stop stops the master and waits until it is gone.
func (in *postfixInstance) stop() {
	b, _ := os.ReadFile(filepath.Join(in.dir, "queue", "pid", "master.pid"))
	_ = exec.Command("postfix", "-c", filepath.Join(in.dir, "etc"), "stop").Run()
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && alive(pid) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
