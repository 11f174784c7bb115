package pgembed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is postmaster.pid: line 1 the postmaster's pid, line 8 its status (PostgreSQL 10+).
type lockFile struct {
	pid    int
	status string
}

func readLockFile(dataDir string) (lockFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return lockFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return lockFile{}, fmt.Errorf("error parsing postmaster.pid: %w", err)
	}
	lf := lockFile{pid: pid}
	if len(lines) >= 8 {
		lf.status = strings.TrimSpace(lines[7])
	}
	return lf, nil
}

// checkNotRunning fails clearly when a live postgres holds the data directory; postgres itself
// would only say "lock file already exists". A lock file left by a crash is postgres's to clear,
// except when its pid now belongs to another process of the same user (common after a container
// restart): postgres then refuses to start, so that stale file is removed here. Postgres's
// shared-memory interlock still stops a real second server.
func checkNotRunning(dataDir string) error {
	lf, err := readLockFile(dataDir)
	if err != nil || !processAlive(lf.pid) {
		return nil
	}
	inUse, known := holdsDataDir(lf.pid, dataDir)
	switch {
	case inUse:
		return fmt.Errorf("data directory %s is in use by another running PostgreSQL (pid %d); stop it or use another Dir", dataDir, lf.pid)
	case !known:
		return nil // leave it to postgres
	}
	if err := os.Remove(filepath.Join(dataDir, "postmaster.pid")); err != nil {
		return fmt.Errorf("error removing stale postmaster.pid: %w", err)
	}
	return nil
}

// holdsDataDir tells whether pid is a postmaster serving dataDir: a postmaster's working
// directory is its data directory. Without access to that, any process named postgres counts.
func holdsDataDir(pid int, dataDir string) (inUse, known bool) {
	cwd, errCWD := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	real, errReal := filepath.EvalSymlinks(dataDir)
	if errCWD == nil && errReal == nil {
		return cwd == real, true
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
		return true, true
	}
	return false, false
}

// processAlive counts EPERM as alive: the process exists but belongs to another user.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
