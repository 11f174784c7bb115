// Package pgembed runs the machine's PostgreSQL server binaries as a private cluster owned by
// this process: the dev database of `sendwerk serve` when there is no DATABASE_URL, and one
// throwaway cluster per test package. It runs initdb and postgres directly (not pg_ctl, not a
// downloaded build) so the server is a child that dies with us, and works as root by running
// them as the postgres user.
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config describes one cluster. Only Dir is required.
type Config struct {
	// Dir is the cluster's home: data lives in Dir/data, created by initdb when it has no
	// PG_VERSION and reused otherwise; the socket lives in Dir when its path is short enough.
	// As root, Dir becomes root:postgres 0770 and Dir/data the postgres user's, so every
	// parent of Dir must let that user in (Start checks): not t.TempDir(), not root's home.
	Dir string
	// BinDir holds postgres and initdb; empty means FindBinDir.
	BinDir string
	// Ephemeral trades durability for speed, for tests: no fsync anywhere, and postgres gets
	// SIGQUIT (immediate shutdown) rather than SIGINT when this process dies.
	Ephemeral bool
	// Port, when above zero, also opens 127.0.0.1:Port for tools that cannot use a unix
	// socket. Authentication is trust, so any local user can connect there. Zero keeps the
	// cluster on its private socket: no port to collide on.
	Port int
	// Logger receives postgres's output at debug level and start/stop at info; nil discards.
	Logger *slog.Logger
	// ExtraArgs are appended to postgres's arguments, after ours so they win, e.g.
	// []string{"-c", "log_statement=all"}.
	ExtraArgs []string
}

// defaultPort names the socket file when Config.Port is zero; the socket directory is private,
// so it cannot collide.
const defaultPort = 5432

// defaultStartTimeout bounds start-up when the caller's context has none; crash recovery of a
// dev database takes seconds, not minutes.
const defaultStartTimeout = time.Minute

// killGrace is how long an immediate shutdown may take before the process group is killed.
const killGrace = 5 * time.Second

// Cluster is a running postgres started by Start.
type Cluster struct {
	cfg        Config
	dir        string
	dataDir    string
	binDir     string
	socketDir  string
	tempSocket bool
	port       int
	user       *serverUser
	logger     *slog.Logger
	out        *output

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// Start initialises the cluster if needed, starts postgres and returns once it accepts
// connections. ctx bounds start-up only: the server runs until Stop or until this process dies.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	start := time.Now()
	c, err := newCluster(cfg)
	if err != nil {
		return nil, fmt.Errorf("error starting postgres: %w", err)
	}
	if err := c.start(ctx); err != nil {
		c.removeTempSocketDir()
		return nil, fmt.Errorf("error starting postgres: %w", err)
	}
	c.logger.Info("postgres started", "dir", c.dir, "pid", c.cmd.Process.Pid, "elapsed", time.Since(start).Round(time.Millisecond))
	return c, nil
}

func newCluster(cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("Config.Dir is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, dir: dir, dataDir: filepath.Join(dir, "data"), binDir: cfg.BinDir, port: cfg.Port, logger: cfg.Logger, exited: make(chan struct{})}
	if c.binDir == "" {
		if c.binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if c.port == 0 {
		c.port = defaultPort
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.out = &output{logger: c.logger}
	c.user, err = lookupServerUser()
	return c, err
}

func (c *Cluster) start(ctx context.Context) error {
	if err := prepareDirs(c.dir, c.dataDir, c.user); err != nil {
		return err
	}
	if err := checkNotRunning(c.dataDir); err != nil {
		return err
	}
	var err error
	if c.socketDir, c.tempSocket, err = socketDir(c.dir, c.port, c.user); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return err
		}
	}
	if err := c.launch(); err != nil {
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		c.kill()
		return fmt.Errorf("%w%s", err, c.out.tail())
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	args := []string{"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"}
	if c.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"), args...)
	// SIGTERM, not SIGKILL, on cancellation or our death: initdb then removes what it created,
	// and the next Start does not mistake a half-made cluster for a usable one.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	c.prepare(cmd, syscall.SIGTERM)
	if err := runLocked(cmd); err != nil {
		return fmt.Errorf("error running initdb: %w%s", err, c.out.tail())
	}
	return nil
}

// launch starts postgres in the foreground as our child.
func (c *Cluster) launch() error {
	listen := ""
	if c.cfg.Port > 0 {
		listen = "127.0.0.1"
	}
	// The connecting process is the server user unless we are root: then the socket is open
	// to all and the socket directory (root's, shared with the server's group) keeps others out.
	perms := "0700"
	if c.user != nil {
		perms = "0777"
	}
	args := []string{"-D", c.dataDir, "-k", quoteListItem(c.socketDir), "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=" + listen, "-c", "unix_socket_permissions=" + perms}
	deathSig := syscall.SIGINT // fast shutdown: the dev database stays consistent
	if c.cfg.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		deathSig = syscall.SIGQUIT
	}
	c.cmd = exec.Command(filepath.Join(c.binDir, "postgres"), append(args, c.cfg.ExtraArgs...)...)
	c.prepare(c.cmd, deathSig)
	// Output is read until postmaster and every backend have closed it; bound that in case
	// something outlives them.
	c.cmd.WaitDelay = killGrace
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked postgres exits, not when the process does
		// (go.dev/issue/27505). This goroutine holds that thread until postgres has exited, so
		// no other goroutine can end it early by exiting while locked to it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("error running postgres: %w", err)
	}
	return nil
}

// prepare sets what initdb and postgres share: run as the server user, in their own process
// group so a Ctrl-C in the terminal reaches only Sendwerk (which then stops postgres in
// order), killed with deathSig when we die, and in Dir, since the server user may not be
// allowed into our working directory.
func (c *Cluster) prepare(cmd *exec.Cmd, deathSig syscall.Signal) {
	cmd.Dir = c.dir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	cmd.Stdout = c.out
	cmd.Stderr = c.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: c.user.credential()}
}

// runLocked runs cmd with the goroutine locked to its thread, so the thread that Pdeathsig is
// tied to lives until cmd has exited.
func runLocked(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// quoteListItem quotes a directory for unix_socket_directories, a comma-separated list.
func quoteListItem(dir string) string {
	if !strings.ContainsAny(dir, ", \t\"") {
		return dir
	}
	return `"` + strings.ReplaceAll(dir, `"`, `""`) + `"`
}

// waitReady polls postmaster.pid until our postmaster (not a crashed predecessor) says ready,
// then confirms with a real connection.
func (c *Cluster) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = c.checkReady(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited during start-up: %v", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready (%v): %w", lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *Cluster) checkReady(ctx context.Context) error {
	lf, err := readLockFile(c.dataDir)
	switch {
	case errors.Is(err, os.ErrPermission):
		// Root without CAP_DAC_OVERRIDE cannot read the server's data: just try to connect.
	case err != nil:
		return err
	case lf.pid != c.cmd.Process.Pid || lf.status != "ready":
		return fmt.Errorf("postmaster.pid says pid %d %q", lf.pid, lf.status)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// URL is a connection string for database: over the private unix socket, or over
// 127.0.0.1:Port when Config.Port is set. The port is always explicit so a PGPORT in the
// environment cannot redirect pgx or psql.
func (c *Cluster) URL(database string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + database}
	query := "sslmode=disable"
	if c.cfg.Port > 0 {
		u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
	} else {
		// '/' is valid in a query; keeping it makes the URL readable in logs.
		query = "host=" + strings.ReplaceAll(url.QueryEscape(c.socketDir), "%2F", "/") + "&port=" + strconv.Itoa(c.port) + "&" + query
	}
	u.RawQuery = query
	return u.String()
}

// CreateDatabase creates database name, as a copy of template when that is not empty: tests
// clone a migrated template in a fraction of a second instead of migrating each database.
// PostgreSQL refuses to copy a template that has open connections.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("error creating database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("error creating database %s: %w", name, err)
	}
	return nil
}

// Done is closed once postgres has exited, through Stop or not: `sendwerk serve` should stop
// when its database dies.
func (c *Cluster) Done() <-chan struct{} {
	return c.exited
}

// Stop asks for a fast shutdown (SIGINT: open transactions roll back, a checkpoint is
// written) and waits for postgres to exit. When ctx ends first it forces an immediate shutdown
// (SIGQUIT; the next start runs crash recovery) and reports that. Later calls return the first
// call's result.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stop(ctx)
		c.removeTempSocketDir()
	})
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	select {
	case <-c.exited:
		if c.waitErr != nil {
			return fmt.Errorf("error stopping postgres: it had already exited: %w%s", c.waitErr, c.out.tail())
		}
		return nil
	default:
	}
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		c.logger.Info("postgres stopped", "dir", c.dir, "elapsed", time.Since(start).Round(time.Millisecond))
		if c.waitErr != nil {
			return fmt.Errorf("error stopping postgres: %w%s", c.waitErr, c.out.tail())
		}
		return nil
	case <-ctx.Done():
	}
	c.kill()
	return fmt.Errorf("error stopping postgres: fast shutdown did not finish, forced an immediate shutdown: %w", ctx.Err())
}

// kill forces an immediate shutdown and, should even that hang, kills the process group.
func (c *Cluster) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(killGrace):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
}

func (c *Cluster) removeTempSocketDir() {
	if c.tempSocket {
		_ = os.RemoveAll(c.socketDir)
	}
}
