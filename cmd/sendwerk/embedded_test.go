package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// runMainEnv makes the test binary act as the sendwerk binary (see TestMain), so the
// embedded-database test runs the real main without a separate build.
const runMainEnv = "SENDWERK_TEST_RUN_MAIN"

// serverProcess is `sendwerk serve` running as a child process.
type serverProcess struct {
	cmd        *exec.Cmd
	baseURL    string
	adminToken string
	exited     chan error
}

func startServerProcess(t *testing.T, dataDir string) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(filteredEnv(), runMainEnv+"=1", "SENDWERK_DATA_DIR="+dataDir, "SENDWERK_HTTP_ADDR=127.0.0.1:0",
		"SENDWERK_SMTP_ADDR=127.0.0.1:0", "SENDWERK_SMTPS_ADDR=127.0.0.1:0", "SENDWERK_LOG_LEVEL=warn",
		"SENDWERK_DEV_INBOX_ADDR=127.0.0.1:0", "SENDWERK_DEV_DNS_ADDR=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	p := &serverProcess{cmd: cmd, exited: make(chan error, 1)}

	banner := make(chan [2]string, 1)
	go scanBanner(stdout, banner)
	go func() { p.exited <- cmd.Wait() }()
	select {
	case b := <-banner:
		p.baseURL, p.adminToken = b[0], b[1]
	case err := <-p.exited:
		t.Fatalf("sendwerk serve exited early: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("sendwerk serve did not print its banner\n%s", stderr.String())
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

var (
	bannerURL   = regexp.MustCompile(`Sendwerk is serving on (http://\S+)`)
	bannerToken = regexp.MustCompile(`admin token: (\S+)`)
)

func scanBanner(r io.Reader, out chan<- [2]string) {
	sc := bufio.NewScanner(r)
	var url string
	for sc.Scan() {
		if m := bannerURL.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
		if m := bannerToken.FindStringSubmatch(sc.Text()); m != nil {
			out <- [2]string{url, m[1]}
			break
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (p *serverProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		require.NoError(t, err, "serve should exit 0 on SIGTERM")
	case <-time.After(60 * time.Second):
		t.Fatal("sendwerk serve did not stop within 60s of SIGTERM")
	}
}

func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "SENDWERK_") || strings.HasPrefix(kv, "PG") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func postgresPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "data", "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	require.NoError(t, err)
	return pid
}

// processGone treats a zombie as gone: it has exited, only its exit status is unread.
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] == "Z"
}

func TestEmbeddedPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "swdata")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	require.NoError(t, os.Chmod(dataDir, 0o755)) // the postgres user must reach the cluster inside

	first := startServerProcess(t, dataDir)
	require.True(t, strings.HasPrefix(first.adminToken, "swadmin_"))
	admin, err := sendwerk.NewClientWithResponses(first.baseURL, sendwerk.WithRequestEditorFn(bearer(first.adminToken)))
	require.NoError(t, err)
	ready, err := admin.GetReadinessWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, 200, ready.StatusCode())
	created, err := admin.CreateTenantWithResponse(ctx, sendwerk.TenantCreate{Name: "survives restarts"})
	require.NoError(t, err)
	require.Equal(t, 201, created.StatusCode(), string(created.Body))

	pid := postgresPID(t, dataDir)
	require.False(t, processGone(pid), "embedded postgres should run while serve does")
	first.stop(t)
	require.Eventually(t, func() bool { return processGone(pid) }, 10*time.Second, 50*time.Millisecond,
		"embedded postgres should stop with serve")

	second := startServerProcess(t, dataDir)
	require.Equal(t, first.adminToken, second.adminToken, "the generated admin token is kept in the data dir")
	admin, err = sendwerk.NewClientWithResponses(second.baseURL, sendwerk.WithRequestEditorFn(bearer(second.adminToken)))
	require.NoError(t, err)
	got, err := admin.GetTenantWithResponse(ctx, created.JSON201.Id)
	require.NoError(t, err)
	require.Equal(t, 200, got.StatusCode(), string(got.Body))
	require.Equal(t, "survives restarts", got.JSON200.Name)
	pid = postgresPID(t, dataDir)
	second.stop(t)
	require.Eventually(t, func() bool { return processGone(pid) }, 10*time.Second, 50*time.Millisecond)
}

func bearer(token string) sendwerk.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}
