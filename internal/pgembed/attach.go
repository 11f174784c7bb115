package pgembed

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RunningURL returns a connection string for database on the cluster in dir while another
// process serves it (a running `sendwerk serve`), so operator commands can share the
// development database rather than fail to start a second server on it. ok is false when
// no live, ready postmaster holds dir.
func RunningURL(dir, database string) (dsn string, ok bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	dataDir := filepath.Join(abs, "data")
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return "", false
	}
	// postmaster.pid: pid, data dir, start time, port, first socket directory, first listen
	// address, shared memory key, status.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 8 || strings.TrimSpace(lines[7]) != "ready" {
		return "", false
	}
	pid, errPID := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, errPort := strconv.Atoi(strings.TrimSpace(lines[3]))
	if errPID != nil || errPort != nil || !processAlive(pid) {
		return "", false
	}
	if inUse, known := holdsDataDir(pid, dataDir); known && !inUse {
		return "", false // a stale file whose pid now belongs to another process
	}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + database}
	socket, listen := strings.TrimSpace(lines[4]), strings.TrimSpace(lines[5])
	switch {
	case socket != "":
		u.RawQuery = "host=" + strings.ReplaceAll(url.QueryEscape(socket), "%2F", "/") + "&port=" + strconv.Itoa(port) + "&sslmode=disable"
	case listen != "" && listen != "*":
		u.Host = net.JoinHostPort(listen, strconv.Itoa(port))
		u.RawQuery = "sslmode=disable"
	default:
		return "", false
	}
	return u.String(), true
}
