// Command chaos is Sendwerk's fault-injection suite: real `sendwerk serve` processes on a
// PostgreSQL they do not own, a counting SMTP sink and a load client with Idempotency-Keys.
// Each scenario injects one fault (kill -9, a PostgreSQL restart, SIGTERM, an upstream
// that defers or hangs up, two processes with one killed), waits for every accepted message
// to settle, and counts: lost, stuck, duplicates and whether each duplicate is visible in
// its timeline as an attempt with outcome `unknown`. It exits 1 on any loss, any stuck
// message after the rescue window, any invisible duplicate, or any duplicate after SIGTERM.
//
//	go run ./chaos -bin bin/sendwerk          # every scenario
//	go run ./chaos -bin bin/sendwerk -quick   # the short form `make test` runs
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/pgembed"
)

// Short timeouts so every scenario settles in about a minute. The rescue time must exceed
// the attempt timeout plus the 15 s an attempt may spend recording its outcome while the
// database is away; River's rescuer looks every 30 s (not configurable), so a dead
// process's attempt is retried within rescueAfter + 30 s + the first retry wait.
const (
	attemptTimeout = 5 * time.Second
	rescueAfter    = 25 * time.Second
	settleLimit    = rescueAfter + 30*time.Second + 60*time.Second
)

func main() {
	os.Exit(run())
}

type options struct {
	bin   string
	quick bool
	only  string
	keep  bool
}

func run() int {
	var o options
	flag.StringVar(&o.bin, "bin", "", "sendwerk binary (default: built from ./cmd/sendwerk)")
	flag.BoolVar(&o.quick, "quick", os.Getenv("CHAOS_QUICK") != "", "short form: fewer messages and scenarios (~3 minutes)")
	flag.StringVar(&o.only, "only", "", "comma-separated scenario names to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (logs) after the run")
	flag.Parse()
	ctx := context.Background()
	e, err := newEnv(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer e.close()
	var results []result
	failed := false
	for _, sc := range plan(o) {
		progress("scenario %s", sc.name)
		r, err := e.runScenario(ctx, sc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: scenario %s: %v\n", sc.name, err)
			failed = true
			continue
		}
		results = append(results, r)
		failed = failed || !r.ok()
	}
	printTable(os.Stdout, results)
	if failed {
		fmt.Fprintf(os.Stderr, "chaos: FAILED (logs in %s)\n", e.dir)
		e.keep = true
		return 1
	}
	return 0
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos: "+format+"\n", args...)
}

// env is what all scenarios share: the PostgreSQL cluster, the sink, the binary.
type env struct {
	o       options
	dir     string
	keep    bool
	pgCfg   pgembed.Config
	cluster *pgembed.Cluster
	mu      sync.Mutex // guards cluster across restarts
	sink    *sink
	admin   string
	secret  string
}

func newEnv(ctx context.Context, o options) (*env, error) {
	dir, err := os.MkdirTemp("", "chaos")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as the postgres user when we are root: it must be able to enter.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	e := &env{o: o, dir: dir, keep: o.keep, admin: "swadmin_" + randomHex(24)}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	e.secret = base64.StdEncoding.EncodeToString(key)
	if e.o.bin == "" {
		e.o.bin = filepath.Join(dir, "sendwerk")
		progress("building ./cmd/sendwerk")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.o.bin, "./cmd/sendwerk")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build: %w", err)
		}
	}
	// Durable commits: Ephemeral's synchronous_commit=off would let an immediate shutdown
	// lose commits already answered, a fault of the test setup and not of Sendwerk. fsync
	// stays off: it matters for a machine crash, not for a crash of PostgreSQL.
	e.pgCfg = pgembed.Config{Dir: filepath.Join(dir, "pg"),
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ExtraArgs: []string{"-c", "max_connections=200", "-c", "fsync=off"}}
	progress("starting PostgreSQL")
	if e.cluster, err = pgembed.Start(ctx, e.pgCfg); err != nil {
		return nil, err
	}
	if e.sink, err = startSink(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.sink != nil {
		e.sink.close()
	}
	e.mu.Lock()
	if e.cluster != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.cluster.Stop(sctx)
		cancel()
	}
	e.mu.Unlock()
	if !e.keep {
		_ = os.RemoveAll(e.dir)
	}
}

// restartPostgres stops the cluster (fast: SIGINT, or immediate: SIGQUIT, which is a crash
// PostgreSQL recovers from with its WAL), waits down, and starts it on the same data.
func (e *env) restartPostgres(ctx context.Context, immediate bool, down time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if immediate {
		cancel() // Stop with a done context sends SIGINT and at once SIGQUIT
	}
	_ = e.cluster.Stop(sctx)
	cancel()
	time.Sleep(down)
	c, err := pgembed.Start(ctx, e.pgCfg)
	if err != nil {
		return fmt.Errorf("error restarting postgres: %w", err)
	}
	e.cluster = c
	return nil
}

func (e *env) dbURL(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cluster.URL(name)
}

// serverEnv is the configuration of every sendwerk process: short timeouts so faults
// settle within seconds, and a retry schedule long enough to outlast every fault.
func (e *env) serverEnv(db string) map[string]string {
	return map[string]string{
		"DATABASE_URL":          e.dbURL(db),
		"SENDWERK_ADMIN_TOKEN":  e.admin,
		"SENDWERK_SECRET_KEY":   e.secret,
		"SENDWERK_AUTO_MIGRATE": "true",
		"SENDWERK_DATA_DIR":     filepath.Join(e.dir, "data"),
		"SENDWERK_SMTP_ADDR":    "off",
		"SENDWERK_SMTPS_ADDR":   "off",
		// The development inbox and DNS listen on fixed ports: two processes would collide.
		"SENDWERK_DEV_INBOX_ADDR":           "off",
		"SENDWERK_DEV_DNS_ADDR":             "off",
		"SENDWERK_API_KEY_RATE_LIMIT":       "100000",
		"SENDWERK_LOG_LEVEL":                "info",
		"SENDWERK_DELIVERY_ATTEMPT_TIMEOUT": attemptTimeout.String(),
		"SENDWERK_JOB_RESCUE_AFTER":         rescueAfter.String(),
		"SENDWERK_RECONCILE_INTERVAL":       "5s",
		"SENDWERK_SHUTDOWN_TIMEOUT":         "20s",
		// As many deliveries at once as connections to the sink: a job waiting for a free
		// connection spends its attempt timeout waiting.
		"SENDWERK_DELIVERY_WORKERS":        "8",
		"SENDWERK_SMTP_POOL_SIZE":          "8",
		"SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s,1s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s",
	}
}

// scenario is one fault and how much load runs through it.
type scenario struct {
	name  string
	procs int
	n     int
	// fault runs beside the load; it returns when the fault is over (servers restarted).
	fault func(ctx context.Context, e *env, r *scenarioRun) error
	// noDuplicates: the fault must not cause any (a graceful stop).
	noDuplicates bool
}

type scenarioRun struct {
	servers []*server
	load    *loader
}

func (r *scenarioRun) accepted() int { return len(r.load.ids()) }

// waitFor polls cond every 20 ms for up to a minute.
func waitFor(cond func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not reached in a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func plan(o options) []scenario {
	n := 200
	if o.quick {
		n = 40
	}
	all := []scenario{
		{name: "kill9-submit", procs: 1, n: n, fault: func(ctx context.Context, e *env, r *scenarioRun) error {
			if err := waitFor(func() bool { return r.accepted() >= n/3 }); err != nil {
				return err
			}
			r.servers[0].kill()
			return r.servers[0].start()
		}},
		{name: "kill9-deliver", procs: 1, n: n, fault: func(ctx context.Context, e *env, r *scenarioRun) error {
			e.sink.set(modeSlow, time.Second)
			if err := waitFor(func() bool { return e.sink.total() >= 4 }); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond) // the next ones are on the wire
			r.servers[0].kill()
			e.sink.set(modeSlow, 100*time.Millisecond)
			return r.servers[0].start()
		}},
		{name: "pg-restart-fast", procs: 1, n: n, fault: pgRestart(n, false)},
		{name: "pg-restart-immediate", procs: 1, n: n, fault: pgRestart(n, true)},
		{name: "sigterm-deliver", procs: 1, n: n, noDuplicates: true, fault: func(ctx context.Context, e *env, r *scenarioRun) error {
			e.sink.set(modeSlow, time.Second)
			if err := waitFor(func() bool { return e.sink.total() >= 4 }); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond)
			took := r.servers[0].term()
			progress("  sigterm: the server stopped in %s", took.Round(10*time.Millisecond))
			e.sink.set(modeSlow, 100*time.Millisecond)
			return r.servers[0].start()
		}},
		{name: "upstream-451-disconnect", procs: 1, n: n, fault: func(ctx context.Context, e *env, r *scenarioRun) error {
			e.sink.set(modeDefer, 0)
			time.Sleep(4 * time.Second)
			e.sink.set(modeDisconnect, 0)
			time.Sleep(4 * time.Second)
			e.sink.set(modeAccept, 0)
			return nil
		}},
		{name: "two-procs-kill-one", procs: 2, n: n, fault: func(ctx context.Context, e *env, r *scenarioRun) error {
			e.sink.set(modeSlow, 500*time.Millisecond)
			if err := waitFor(func() bool { return e.sink.total() >= 6 }); err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			r.servers[0].kill() // the survivor takes over its jobs; no restart
			e.sink.set(modeSlow, 50*time.Millisecond)
			return nil
		}},
	}
	if o.only == "" && o.quick {
		o.only = "kill9-deliver,pg-restart-immediate,sigterm-deliver"
	}
	if o.only == "" {
		return all
	}
	var out []scenario
	for _, sc := range all {
		for _, name := range strings.Split(o.only, ",") {
			if strings.TrimSpace(name) == sc.name {
				out = append(out, sc)
			}
		}
	}
	return out
}

func pgRestart(n int, immediate bool) func(ctx context.Context, e *env, r *scenarioRun) error {
	return func(ctx context.Context, e *env, r *scenarioRun) error {
		e.sink.set(modeSlow, 200*time.Millisecond)
		if err := waitFor(func() bool { return r.accepted() >= n/3 && e.sink.total() >= 2 }); err != nil {
			return err
		}
		if err := e.restartPostgres(ctx, immediate, 2*time.Second); err != nil {
			return err
		}
		e.sink.set(modeAccept, 0)
		return nil
	}
}

// runScenario runs one scenario on a database of its own and measures it.
func (e *env) runScenario(ctx context.Context, sc scenario) (result, error) {
	res := result{name: sc.name, submitted: sc.n}
	db := "chaos_" + strings.ReplaceAll(sc.name, "-", "_")
	e.mu.Lock()
	err := e.cluster.CreateDatabase(ctx, db, "")
	e.mu.Unlock()
	if err != nil {
		return res, err
	}
	e.sink.reset()
	run := &scenarioRun{}
	defer func() {
		for _, s := range run.servers {
			if s.running() {
				s.term()
			}
		}
	}()
	for i := range sc.procs {
		s, err := newServer(fmt.Sprintf("%s-%d", sc.name, i+1), e.o.bin, e.dir, e.serverEnv(db))
		if err != nil {
			return res, err
		}
		if err := s.start(); err != nil {
			return res, err
		}
		run.servers = append(run.servers, s)
	}
	key, err := setupTenant(ctx, run.servers[0].baseURL, e.admin, e.sink.addr.Port)
	if err != nil {
		return res, err
	}
	run.load = newLoader(key, sc.name, func() []string {
		var out []string
		for _, s := range run.servers {
			if s.running() {
				out = append(out, s.baseURL)
			}
		}
		if len(out) == 0 {
			out = append(out, run.servers[0].baseURL) // restarting: keep trying it
		}
		return out
	})
	faultErr := make(chan error, 1)
	go func() { faultErr <- sc.fault(ctx, e, run) }()
	run.load.run(ctx, sc.n, 8, 2*time.Minute)
	if err := <-faultErr; err != nil {
		return res, fmt.Errorf("fault: %w", err)
	}
	calm := time.Now()
	pool, err := pgxpool.New(ctx, e.dbURL(db))
	if err != nil {
		return res, err
	}
	defer pool.Close()
	ids := run.load.ids()
	res.accepted, res.refused, res.internal = len(ids), len(run.load.refused), run.load.codes[500]
	for _, r := range run.load.refused {
		progress("  not accepted: %s", r)
	}
	if err := settle(ctx, pool, ids, time.Now().Add(settleLimit)); err != nil {
		return res, err
	}
	res.settle = time.Since(calm)
	time.Sleep(time.Second) // a late duplicate would arrive now
	if err := res.count(ctx, pool, e.sink, ids); err != nil {
		return res, err
	}
	res.noDuplicates = sc.noDuplicates
	return res, nil
}

// msgState is a message's status and how many of its attempts ended unknown.
type msgState struct {
	status  string
	unknown int
}

const statesQuery = `
SELECT m.id, m.status,
       count(e.id) FILTER (WHERE e.type = 'attempt' AND e.data->>'outcome' = 'unknown')
FROM messages m LEFT JOIN message_events e ON e.message_id = m.id
GROUP BY m.id, m.status`

func readStates(ctx context.Context, pool *pgxpool.Pool) (map[string]msgState, error) {
	rows, err := pool.Query(ctx, statesQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]msgState{}
	for rows.Next() {
		var id string
		var s msgState
		if err := rows.Scan(&id, &s.status, &s.unknown); err != nil {
			return nil, err
		}
		out[id] = s
	}
	return out, rows.Err()
}

// settle waits until every accepted message is final, or the deadline.
func settle(ctx context.Context, pool *pgxpool.Pool, ids []string, deadline time.Time) error {
	for {
		states, err := readStates(ctx, pool)
		if err == nil {
			pending := 0
			for _, id := range ids {
				if st := states[id].status; st != "delivered" && st != "failed" && st != "cancelled" {
					pending++
				}
			}
			if pending == 0 || time.Now().After(deadline) {
				return nil
			}
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
