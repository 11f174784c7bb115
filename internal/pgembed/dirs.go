package pgembed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUser is who initdb and postgres run as when Sendwerk runs as root, which both refuse.
type serverUser struct {
	name     string
	uid, gid uint32
}

// lookupServerUser returns nil when the process is not root: the cluster then runs as the
// invoking user. As root it picks the postgres user that Debian's postgresql-common creates, else
// nobody.
func lookupServerUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, errUID := strconv.ParseUint(u.Uid, 10, 32)
		gid, errGID := strconv.ParseUint(u.Gid, 10, 32)
		if errUID == nil && errGID == nil {
			return &serverUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("PostgreSQL refuses to run as root and there is no postgres or nobody user to run it as; create one, e.g. `useradd --system postgres`")
}

// credential is nil for the invoking user. Supplementary groups are dropped (Groups is empty), so
// only the primary group counts, which canEnter relies on.
func (u *serverUser) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid}
}

// prepareDirs creates Dir and Dir/data. The server user owns data (postgres insists); Dir, which
// may hold the socket, is shared with it through its group so the connecting process (root, or
// the invoking user who is also the server user) can reach the socket and nobody else can.
func prepareDirs(dir, dataDir string, u *serverUser) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("error creating %s: %w", parent, err)
	}
	if u != nil {
		if err := checkEnterable(parent, u); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("error creating %s: %w", dir, err)
	}
	if err := shareWithServer(dir, u); err != nil {
		return err
	}
	err := os.Mkdir(dataDir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil // an existing cluster keeps its owner
	}
	if err != nil {
		return fmt.Errorf("error creating %s: %w", dataDir, err)
	}
	if u != nil {
		if err := os.Chown(dataDir, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("error handing %s to user %s: %w", dataDir, u.name, err)
		}
	}
	return nil
}

// shareWithServer makes a directory of root's writable by the server user's group only, so
// postgres can put its socket there and root can still reach it without CAP_DAC_OVERRIDE.
func shareWithServer(dir string, u *serverUser) error {
	if u == nil {
		return nil
	}
	if err := os.Chown(dir, os.Geteuid(), int(u.gid)); err != nil {
		return fmt.Errorf("error sharing %s with user %s: %w", dir, u.name, err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		return fmt.Errorf("error sharing %s with user %s: %w", dir, u.name, err)
	}
	return nil
}

// checkEnterable fails early, naming the culprit, when the server user cannot reach dir, e.g.
// under root's 0700 home or t.TempDir(); postgres itself would only say "Permission denied"
// about some other path.
func checkEnterable(dir string, u *serverUser) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("error resolving %s: %w", dir, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("error checking %s: %w", p, err)
		}
		if !canEnter(fi, u) {
			return fmt.Errorf("PostgreSQL runs as user %s (it refuses root), which cannot enter %s (mode %v): choose a Dir outside it (e.g. in the project directory or the system temp directory) or allow it in with `chmod o+x %s`",
				u.name, p, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func canEnter(fi fs.FileInfo, u *serverUser) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case st.Gid == u.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// maxSocketPath is sun_path's 108 bytes less the terminating NUL; postgres refuses longer
// socket paths.
const maxSocketPath = 107

// socketDir returns dir when the socket path fits, else a new short directory under the system
// temp directory that the caller removes on Stop.
func socketDir(dir string, port int, u *serverUser) (path string, temp bool, err error) {
	if len(socketPath(dir, port)) <= maxSocketPath {
		return dir, false, nil
	}
	tmp, err := os.MkdirTemp("", "pgembed-")
	if err != nil {
		return "", false, fmt.Errorf("error creating socket directory: %w", err)
	}
	if err := setUpSocketDir(tmp, port, u); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, err
	}
	return tmp, true, nil
}

func setUpSocketDir(tmp string, port int, u *serverUser) error {
	if len(socketPath(tmp, port)) > maxSocketPath {
		return fmt.Errorf("socket path %s is too long for a unix socket even in the temp directory; set TMPDIR to a shorter one", socketPath(tmp, port))
	}
	if u != nil {
		if err := checkEnterable(filepath.Dir(tmp), u); err != nil {
			return err
		}
	}
	return shareWithServer(tmp, u)
}

func socketPath(dir string, port int) string {
	return filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
}
