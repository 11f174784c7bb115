package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is `sendwerk serve` running as a child process, so its CPU time is its own.
type server struct {
	cmd     *exec.Cmd
	baseURL string
	logPath string
	env     map[string]string
	// smtpAddr is the relay host's STARTTLS submission listener.
	smtpAddr string
	exited   chan struct{}
}

// startServer runs bin serve with env on a free loopback port, inside cg.
func startServer(bin, logDir string, env map[string]string, cg *cpuGroup) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env["SENDWERK_HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(logDir, "sendwerk.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("error starting %s serve: %w", bin, err)
	}
	s := &server{cmd: cmd, baseURL: "http://127.0.0.1:" + strconv.Itoa(port), logPath: logPath, env: env, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	if err := cg.add(cmd.Process.Pid); err != nil {
		s.stop()
		return nil, fmt.Errorf("error moving sendwerk into its cgroup: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("sendwerk serve exited during start-up; see %s:\n%s", logPath, tail(logPath))
		default:
		}
		resp, err := http.Get(s.baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("sendwerk serve not ready after a minute; see %s:\n%s", logPath, tail(logPath))
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
