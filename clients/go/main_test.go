package sendwerk_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain builds the sendwerk binary and runs `sendwerk serve` with its embedded database
// in a fresh data directory, so the examples run against the real server.
func TestMain(m *testing.M) {
	os.Exit(runWithServer(m))
}

func runWithServer(m *testing.M) int {
	dir, err := os.MkdirTemp("", "swgo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755) // the embedded PostgreSQL runs as the postgres user when we are root
	bin := filepath.Join(dir, "sendwerk")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/sendwerk")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sendwerk:", err)
		return 1
	}
	cmd := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "SENDWERK_") && !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "SENDWERK_DATA_DIR="+filepath.Join(dir, "data"), "SENDWERK_HTTP_ADDR=127.0.0.1:0", "SENDWERK_SMTP_ADDR=off", "SENDWERK_SMTPS_ADDR=off", "SENDWERK_LOG_LEVEL=error",
		// The development inbox and DNS on free ports: Example_send delivers into the inbox.
		"SENDWERK_DEV_INBOX_ADDR=127.0.0.1:0", "SENDWERK_DEV_DNS_ADDR=127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	banner := make(chan [2]string, 1)
	go readBanner(stdout, banner)
	select {
	case b := <-banner:
		baseURL, adminToken = b[0], b[1]
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "sendwerk serve printed no banner in 60s")
		return 1
	}
	return m.Run()
}

func readBanner(r io.Reader, out chan<- [2]string) {
	url, token := regexp.MustCompile(`Sendwerk is serving on (http://\S+)`), regexp.MustCompile(`admin token: (\S+)`)
	sc := bufio.NewScanner(r)
	var base string
	for sc.Scan() {
		if m := url.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
		if m := token.FindStringSubmatch(sc.Text()); m != nil && base != "" {
			out <- [2]string{base, m[1]}
			break
		}
	}
	_, _ = io.Copy(io.Discard, r)
}
