package pgembed

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrBinariesNotFound says what to install; `sendwerk serve` shows it as is when it has no
// DATABASE_URL and no PostgreSQL to run.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries not found (looked on PATH and in /usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or set DATABASE_URL")

// debianBinGlob is where Debian and Ubuntu put server binaries: their postgresql packages do not
// put `postgres` or `initdb` on PATH.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the directory holding `postgres` and `initdb`: the one they are in on PATH
// (symlinks resolved, so initdb is taken from beside the postgres it belongs to), else the highest
// version under /usr/lib/postgresql.
func FindBinDir() (string, error) {
	return findBinDir(os.Getenv("PATH"), debianBinGlob)
}

// findBinDir is FindBinDir with its inputs as arguments so tests can run in parallel.
func findBinDir(pathEnv, glob string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" || !isExecutable(filepath.Join(dir, "postgres")) {
			continue
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dir, "postgres"))
		if err != nil {
			continue
		}
		if binDir := filepath.Dir(real); hasServerBinaries(binDir) {
			return binDir, nil
		}
	}
	matches, _ := filepath.Glob(glob) // only ErrBadPattern, and the pattern is ours
	slices.SortFunc(matches, func(a, b string) int { return slices.Compare(versionOf(b), versionOf(a)) })
	for _, binDir := range matches {
		if hasServerBinaries(binDir) {
			return binDir, nil
		}
	}
	return "", ErrBinariesNotFound
}

func hasServerBinaries(binDir string) bool {
	return isExecutable(filepath.Join(binDir, "postgres")) && isExecutable(filepath.Join(binDir, "initdb"))
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// versionOf parses the version directory of ".../15/bin" or ".../9.6/bin" into numbers;
// anything else sorts lowest.
func versionOf(binDir string) []int {
	var v []int
	for part := range strings.SplitSeq(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}
