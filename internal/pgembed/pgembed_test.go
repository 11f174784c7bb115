package pgembed

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// orphanDirEnv makes the test binary a helper that starts a cluster in that directory, prints
// the postmaster's pid and waits to be killed: DiesWithParent checks what happens then.
const orphanDirEnv = "PGEMBED_TEST_ORPHAN_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(orphanDirEnv); dir != "" {
		c, err := Start(context.Background(), Config{Dir: dir, Ephemeral: os.Getenv("PGEMBED_TEST_ORPHAN_EPHEMERAL") != ""})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(c.cmd.Process.Pid)
		select {}
	}
	os.Exit(m.Run())
}

// clusterDir is a directory the postgres user can enter when tests run as root: t.TempDir()
// sits in a root-owned 0700 directory, and MkdirTemp makes 0700 ones.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgembed-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(dir)) })
	return dir
}

// startCluster starts a cluster and stops it at cleanup. It fails, never skips, when the
// binaries are missing: the error says what to install.
func startCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	return c
}

func connect(t *testing.T, c *Cluster, database string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL(database))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

func requireProcessGone(t *testing.T, pid int) {
	t.Helper()
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "postmaster still running")
	require.ErrorIs(t, syscall.Kill(-pid, 0), syscall.ESRCH, "backends still running in its process group")
}

// running is false for a zombie too: an orphan is reaped by whatever init the machine has, if any.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, afterName, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(afterName, "Z") && !strings.HasPrefix(afterName, "X")
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()

	t.Run("FindsMachineBinaries", func(t *testing.T) {
		t.Parallel()
		binDir, err := FindBinDir()
		require.NoError(t, err)
		require.True(t, hasServerBinaries(binDir))
	})

	t.Run("ResolvesSymlinksOnPath", func(t *testing.T) {
		t.Parallel()
		realDir, err := FindBinDir()
		require.NoError(t, err)
		realDir, err = filepath.EvalSymlinks(realDir)
		require.NoError(t, err)
		pathDir := t.TempDir()
		for _, name := range []string{"postgres", "initdb"} {
			require.NoError(t, os.Symlink(filepath.Join(realDir, name), filepath.Join(pathDir, name)))
		}
		binDir, err := findBinDir(t.TempDir()+string(os.PathListSeparator)+pathDir, "/nonexistent/*/bin")
		require.NoError(t, err)
		require.Equal(t, realDir, binDir)
	})

	t.Run("PicksHighestLibVersion", func(t *testing.T) {
		t.Parallel()
		lib := t.TempDir()
		for _, version := range []string{"9.6", "15", "10", "16", "devel"} {
			binDir := filepath.Join(lib, version, "bin")
			require.NoError(t, os.MkdirAll(binDir, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(binDir, "postgres"), nil, 0o755))
			if version != "16" { // a half-installed 16 has no initdb
				require.NoError(t, os.WriteFile(filepath.Join(binDir, "initdb"), nil, 0o755))
			}
		}
		binDir, err := findBinDir("", filepath.Join(lib, "*", "bin"))
		require.NoError(t, err)
		require.Equal(t, filepath.Join(lib, "15", "bin"), binDir)
	})

	t.Run("SaysWhatToInstall", func(t *testing.T) {
		t.Parallel()
		_, err := findBinDir("", filepath.Join(t.TempDir(), "*", "bin"))
		require.ErrorIs(t, err, ErrBinariesNotFound)
		require.EqualError(t, err, "PostgreSQL server binaries not found (looked on PATH and in /usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or set DATABASE_URL")
	})
}

func TestStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("EphemeralClusterServesQueries", func(t *testing.T) {
		t.Parallel()
		dir := clusterDir(t)
		begin := time.Now()
		c := startCluster(t, Config{Dir: dir, Ephemeral: true})
		t.Logf("ephemeral cluster started in %v", time.Since(begin))
		require.Equal(t, dir, c.socketDir)

		conn := connect(t, c, "postgres")
		_, err := conn.Exec(ctx, "CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "INSERT INTO note VALUES (1, 'hello')")
		require.NoError(t, err)
		var fsync string
		require.NoError(t, conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync))
		require.Equal(t, "off", fsync)
	})

	t.Run("CreateDatabaseClonesTemplate", func(t *testing.T) {
		t.Parallel()
		c := startCluster(t, Config{Dir: clusterDir(t), Ephemeral: true})
		require.NoError(t, c.CreateDatabase(ctx, "tmpl", ""))
		tmpl, err := pgx.Connect(ctx, c.URL("tmpl"))
		require.NoError(t, err)
		_, err = tmpl.Exec(ctx, "CREATE TABLE migrated (id int)")
		require.NoError(t, err)
		require.NoError(t, tmpl.Close(ctx)) // a template with connections cannot be copied

		begin := time.Now()
		require.NoError(t, c.CreateDatabase(ctx, "Test-1", "tmpl"))
		t.Logf("database cloned from template in %v", time.Since(begin))
		var n int
		require.NoError(t, connect(t, c, "Test-1").QueryRow(ctx, "SELECT count(*) FROM migrated").Scan(&n))
		require.Zero(t, n)
	})

	t.Run("PersistentClusterIsReused", func(t *testing.T) {
		t.Parallel()
		dir := clusterDir(t)
		c, err := Start(ctx, Config{Dir: dir})
		require.NoError(t, err)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restart')")
		require.NoError(t, err)
		require.NoError(t, conn.Close(ctx))
		initialised, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION"))
		require.NoError(t, err)

		pid := c.cmd.Process.Pid
		require.NoError(t, c.Stop(ctx))
		requireProcessGone(t, pid)
		require.NoError(t, c.Stop(ctx), "Stop is idempotent")
		<-c.Done()

		begin := time.Now()
		c = startCluster(t, Config{Dir: dir})
		t.Logf("persistent cluster restarted in %v", time.Since(begin))
		var v string
		require.NoError(t, connect(t, c, "postgres").QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
		require.Equal(t, "survives restart", v)
		reused, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION"))
		require.NoError(t, err)
		require.Equal(t, initialised.ModTime(), reused.ModTime(), "initdb ran again")
	})

	t.Run("RefusesDirInUse", func(t *testing.T) {
		t.Parallel()
		dir := clusterDir(t)
		c := startCluster(t, Config{Dir: dir, Ephemeral: true})

		_, err := Start(ctx, Config{Dir: dir, Ephemeral: true})
		require.EqualError(t, err, fmt.Sprintf("error starting postgres: data directory %s is in use by another running PostgreSQL (pid %d); stop it or use another Dir",
			filepath.Join(dir, "data"), c.cmd.Process.Pid))
		require.NoError(t, connect(t, c, "postgres").Ping(ctx), "the running cluster was disturbed")
	})

	t.Run("IgnoresLockFileOfReusedPID", func(t *testing.T) {
		t.Parallel()
		dir := clusterDir(t)
		c := startCluster(t, Config{Dir: dir, Ephemeral: true})
		require.NoError(t, c.Stop(ctx))
		// As after a container restart: the crashed postmaster's pid is now another process's.
		require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))

		c = startCluster(t, Config{Dir: dir, Ephemeral: true})
		require.NoError(t, connect(t, c, "postgres").Ping(ctx))
	})

	t.Run("DiesWithParent", func(t *testing.T) {
		t.Parallel()
		for _, ephemeral := range []bool{true, false} {
			helper := exec.Command(os.Args[0], "-test.run=^$")
			helper.Env = append(os.Environ(), orphanDirEnv+"="+clusterDir(t))
			if ephemeral {
				helper.Env = append(helper.Env, "PGEMBED_TEST_ORPHAN_EPHEMERAL=1")
			}
			helper.Stderr = os.Stderr
			stdout, err := helper.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, helper.Start())
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			pid, err := strconv.Atoi(strings.TrimSpace(line))
			require.NoError(t, err)

			require.NoError(t, helper.Process.Kill()) // SIGKILL: no chance to call Stop
			_ = helper.Wait()
			require.Eventually(t, func() bool { return !running(pid) }, 10*time.Second, 20*time.Millisecond,
				"postgres (pid %d, ephemeral %v) outlived its parent", pid, ephemeral)
		}
	})

	t.Run("LongDirMovesSocket", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(clusterDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
		c := startCluster(t, Config{Dir: dir, Ephemeral: true})
		require.NotEqual(t, dir, c.socketDir)
		require.NoError(t, connect(t, c, "postgres").Ping(ctx))

		require.NoError(t, c.Stop(ctx))
		require.NoDirExists(t, c.socketDir)
	})

	t.Run("ListensOnPort", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		require.NoError(t, l.Close())

		c := startCluster(t, Config{Dir: clusterDir(t), Ephemeral: true, Port: port})
		require.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app?sslmode=disable", port), c.URL("app"))
		require.NoError(t, connect(t, c, "postgres").Ping(ctx))
	})

	t.Run("StartFailureQuotesOutput", func(t *testing.T) {
		t.Parallel()
		_, err := Start(ctx, Config{Dir: clusterDir(t), Ephemeral: true, ExtraArgs: []string{"-c", "no_such_setting=1"}})
		require.ErrorContains(t, err, "error starting postgres: postgres exited during start-up")
		require.ErrorContains(t, err, `unrecognized configuration parameter "no_such_setting"`)
	})

	t.Run("UnreachableDirFailsClearly", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() != 0 {
			t.Skip("only root hands the cluster to another user")
		}
		private := t.TempDir() // root-owned 0700, as is its parent
		_, err := Start(ctx, Config{Dir: filepath.Join(private, "pg"), Ephemeral: true})
		require.ErrorContains(t, err, "which cannot enter "+filepath.Dir(private)+" (mode -rwx------)")
		require.ErrorContains(t, err, "chmod o+x")
	})
}
