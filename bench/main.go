// Command bench measures Sendwerk beside its peers on this machine, all started here on
// loopback: a durable PostgreSQL cluster (fsync and synchronous commit on), the real
// `sendwerk serve` binary as a child process, an in-process SMTP sink that discards mail
// but records when each Message-ID arrived, an in-process DNS server for the DKIM domain,
// and a private Postfix relaying to the same sink. It prints a table per run, then the
// min / median / max of every figure across runs, and writes bench/results.json.
// `make bench` runs it (three full runs; BENCH_RUNS=n for another count, BENCH_QUICK=1 for a
// short smoke run).
//
// It is not part of the product binary and not a timed test: numbers depend on the
// machine and on whatever else runs on it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/pgembed"
)

// plan sizes a run.
type plan struct {
	Quick           bool    `json:"quick"`
	Concurrencies   []int   `json:"submit_concurrencies"`
	SubmitSeconds   float64 `json:"submit_seconds"`
	BatchSize       int     `json:"batch_size"`
	BatchClients    int     `json:"batch_clients"`
	BatchSeconds    float64 `json:"batch_seconds"`
	RelayMessages   int     `json:"relay_messages"`
	RelaySubmitters int     `json:"relay_submitters"`
	MessageBytes    int     `json:"message_bytes"`
	// SMTP submission (STARTTLS + AUTH) to the relay host and to Postfix's submission service.
	SubmissionMessages   int     `json:"submission_messages"`
	SubmissionPerSession int     `json:"submission_messages_per_session"`
	LatencyRate          int     `json:"latency_rate_per_s"`
	LatencySeconds       float64 `json:"latency_seconds"`
	SettleSeconds        float64 `json:"settle_seconds"`
	WarmupSeconds        float64 `json:"warmup_seconds"`
}

func fullPlan() plan {
	return plan{
		Concurrencies: []int{1, 16, 64}, SubmitSeconds: 15, BatchSize: 500, BatchClients: 2, BatchSeconds: 15,
		RelayMessages: 20000, RelaySubmitters: 20, MessageBytes: 2048, LatencyRate: 100, LatencySeconds: 30,
		SubmissionMessages: 10000, SubmissionPerSession: 50,
		SettleSeconds: 2, WarmupSeconds: 2,
	}
}

func quickPlan() plan {
	return plan{
		Quick: true, Concurrencies: []int{1, 16, 64}, SubmitSeconds: 2, BatchSize: 500, BatchClients: 2, BatchSeconds: 2,
		RelayMessages: 1000, RelaySubmitters: 20, MessageBytes: 2048, LatencyRate: 100, LatencySeconds: 3,
		SubmissionMessages: 1000, SubmissionPerSession: 50,
		SettleSeconds: 0.5, WarmupSeconds: 0.5,
	}
}

type options struct {
	quick   bool
	bin     string
	out     string
	workDir string
	phases  map[string]bool
	env     map[string]string
	sqlLog  bool
	keep    bool
	perf    bool
	pgss    bool
	relayN  int
	submN   int
	runs    int // complete, independent runs one after another (each its own work directory)
	sweep   string
	pgOpts  []string
}

type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, " ")
}
func (f listFlag) Set(v string) error { *f.l = append(*f.l, v); return nil }

type envFlag map[string]string

func (e envFlag) String() string { return fmt.Sprint(map[string]string(e)) }
func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(k, "SENDWERK_") {
		return fmt.Errorf("want SENDWERK_NAME=value, got %q", v)
	}
	e[k] = val
	return nil
}

func main() {
	os.Exit(run())
}

func run() int {
	o := options{env: map[string]string{}}
	phases := "submit,batch,relay,submission,latency,dkim"
	flag.BoolVar(&o.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "short smoke run (also BENCH_QUICK=1)")
	flag.StringVar(&o.bin, "bin", "", "sendwerk binary to run (default: build ./cmd/sendwerk into the work directory)")
	flag.StringVar(&o.out, "out", "", "where to write the results (default: bench/results.json, quick runs bench/out/results-quick.json; - for nowhere)")
	flag.StringVar(&o.workDir, "dir", "", "work directory (default: a new one under the system temp dir, removed afterwards)")
	flag.StringVar(&phases, "phases", phases, "comma-separated phases to run: submit, batch, relay, submission, latency, dkim (dkim alone starts nothing)")
	flag.Var(envFlag(o.env), "env", "extra SENDWERK_NAME=value for the server (repeatable), for tuning")
	flag.BoolVar(&o.sqlLog, "sqllog", false, "log every SQL statement to <dir>/pg/data/log/postgresql.csv (debugging; slows everything)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&o.pgss, "pgss", false, "load pg_stat_statements and write the costliest statements to <dir>/pg_stat_statements.txt (tuning; adds overhead)")
	flag.BoolVar(&o.perf, "perf", false, "record a system-wide perf profile of each Sendwerk relay run into <dir>/perf-*.data (needs perf)")
	flag.StringVar(&o.sweep, "sweep", "", "tuning: SENDWERK_NAME=v1,v2,… restarts the server with each value and measures submits and relay runs (no table, no results file)")
	flag.Var(listFlag{&o.pgOpts}, "pg-option", "extra PostgreSQL setting name=value (repeatable), e.g. session_preload_libraries=auto_explain for debugging")
	flag.IntVar(&o.relayN, "relay-messages", 0, "messages per relay run (default: the plan's)")
	flag.IntVar(&o.submN, "submission-messages", 0, "messages per SMTP submission run (default: the plan's; rounded up to whole sessions)")
	runs := os.Getenv("BENCH_RUNS")
	flag.StringVar(&runs, "runs", runs, "complete, independent runs one after another, summarized as min / median / max (also BENCH_RUNS; default 3, -quick 1; -sweep runs once)")
	flag.Parse()
	var err error
	if o.runs, err = runCount(runs, o.quick); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	switch {
	case o.out == "-":
		o.out = ""
	case o.out == "" && o.quick:
		o.out = "bench/out/results-quick.json" // a smoke run never replaces the full run's results
	case o.out == "":
		o.out = "bench/results.json"
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.phases[p] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchRuns(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// needsEnvironment reports whether the run needs the cluster, server, sink and Postfix:
// every phase but the in-process dkim phase does.
func needsEnvironment(o options) bool {
	if o.sweep != "" || o.pgss {
		return true
	}
	for p := range o.phases {
		if p != "dkim" {
			return true
		}
	}
	return false
}

// env is everything the benchmark started.
type env struct {
	o       options
	plan    plan
	dir     string
	cluster *pgembed.Cluster
	dbURL   string
	pgHost  string
	pgPort  string
	pgBin   string
	pgVars  []string // -D name=value of the pgbench script
	sink    *sink
	dns     *dnsServer
	srv     *server
	postfix *postfixInstance
	swCPU   *cpuGroup // sendwerk serve
	pgCPU   *cpuGroup // the PostgreSQL cluster
	pfCPU   *cpuGroup // every Postfix process
	tenant  *tenantSetup
	load    *submitter
	res     *results
	stats   *statementCounter
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// runOnce is one complete run: its own work directory, cluster, server, sink and Postfix,
// started, measured phase by phase and stopped again. It prints the run's table and returns
// its results (nil after a sweep, which prints its own table).
func runOnce(ctx context.Context, o options) (res *results, err error) {
	e := &env{o: o, plan: fullPlan()}
	if o.quick {
		e.plan = quickPlan()
	}
	if o.relayN > 0 {
		e.plan.RelayMessages = o.relayN
	}
	if o.submN > 0 {
		e.plan.SubmissionMessages = o.submN
	}
	e.dir = o.workDir
	if e.dir == "" {
		// Short: the PostgreSQL socket lives inside, and socket paths are limited to ~107 bytes.
		if e.dir, err = os.MkdirTemp("", "swb"); err != nil {
			return nil, err
		}
		if !o.keep {
			defer os.RemoveAll(e.dir)
		}
	} else if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(e.dir, 0o755); err != nil {
		return nil, err
	}
	defer e.close()
	started := time.Now()
	if needsEnvironment(o) {
		if err := e.start(ctx); err != nil {
			return nil, err
		}
		if err := e.smoke(ctx); err != nil {
			return nil, err
		}
	} else {
		e.res = newResults(e)
	}
	if o.sweep != "" {
		return nil, e.sweep(ctx, o.sweep)
	}
	for _, ph := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"submit", e.phaseSubmit},
		{"batch", e.phaseBatch},
		{"relay", e.phaseRelay},
		{"submission", e.phaseSubmission},
		{"latency", e.phaseLatency},
		{"dkim", e.phaseDKIM},
	} {
		if !o.phases[ph.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress("phase %s", ph.name)
		if err := ph.run(ctx); err != nil {
			return nil, fmt.Errorf("phase %s: %w", ph.name, err)
		}
	}
	if o.pgss {
		if err := e.dumpStatements(ctx); err != nil {
			return nil, err
		}
	}
	e.res.DurationSeconds = time.Since(started).Seconds()
	e.res.print(os.Stdout)
	return e.res, nil
}

// start brings everything up: the cluster, sink, DNS, Postfix, the server and the tenant.
func (e *env) start(ctx context.Context) error {
	e.swCPU, e.pgCPU, e.pfCPU = newCPUGroup("sendwerk"), newCPUGroup("postgres"), newCPUGroup("postfix")
	binDir, err := pgembed.FindBinDir()
	if err != nil {
		return err
	}
	e.pgBin = filepath.Join(binDir, "pgbench")
	if _, err := os.Stat(e.pgBin); err != nil {
		if e.pgBin, err = exec.LookPath("pgbench"); err != nil {
			return errors.New("pgbench not found; run make setup (Debian: postgresql-contrib)")
		}
	}

	progress("starting PostgreSQL (durable: fsync and synchronous_commit on)")
	// Statements go to a CSV log (one record per statement, parameters included) so the
	// pgbench script can be built from what the server really ran; statement logging is
	// switched on only while one submission is captured.
	extra := []string{"-c", "max_connections=200", "-c", "logging_collector=on", "-c", "log_destination=csvlog",
		"-c", "log_directory=log", "-c", "log_filename=postgresql", "-c", "log_rotation_size=0"}
	if e.o.sqlLog {
		extra = append(extra, "-c", "log_statement=all")
	}
	for _, opt := range e.o.pgOpts {
		extra = append(extra, "-c", opt)
	}
	// pg_stat_statements is always loaded: the report counts statements per message from it.
	// Top-level statements only, unless -pgss asks for the nested ones too.
	track := "top"
	if e.o.pgss {
		track = "all"
	}
	extra = append(extra, "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track="+track)
	e.cluster, err = pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(e.dir, "pg"), Ephemeral: false, ExtraArgs: extra})
	if err != nil {
		return err
	}
	if err := e.cluster.CreateDatabase(ctx, "sendwerk", ""); err != nil {
		return err
	}
	e.dbURL = e.cluster.URL("sendwerk")
	if err := e.parseDBURL(); err != nil {
		return err
	}
	if e.stats, err = newStatementCounter(ctx, e.dbURL); err != nil {
		return err
	}
	if err := e.addPostgresToGroup(); err != nil {
		return err
	}

	if e.sink, err = startSink(); err != nil {
		return err
	}
	if e.dns, err = startDNS(); err != nil {
		return err
	}
	progress("starting Postfix")
	if e.postfix, err = startPostfix(filepath.Join(e.dir, "postfix"), e.sink.addr, e.pfCPU); err != nil {
		return err
	}
	if e.pfCPU.dir == "" {
		e.pfCPU.roots = func() []int { return pidFromFile(filepath.Join(e.postfix.dir, "queue", "pid", "master.pid")) }
	}

	progress("starting sendwerk serve")
	smtpPort, err := freePort()
	if err != nil {
		return err
	}
	// The relay host gets the same kind of certificate as Postfix's submission service
	// (self-signed ECDSA P-256), so both pay the same for each TLS handshake; left to
	// itself it would generate its development RSA-2048 one.
	tlsDir := filepath.Join(e.dir, "relay-tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		return err
	}
	relayCert, relayKey := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	if err := writeSelfSigned(relayCert, relayKey); err != nil {
		return err
	}
	adminToken := "swadmin_" + randomHex(24)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	srvEnv := map[string]string{
		"DATABASE_URL":         e.dbURL,
		"SENDWERK_ADMIN_TOKEN": adminToken,
		"SENDWERK_SECRET_KEY":  base64.StdEncoding.EncodeToString(key),
		"SENDWERK_DATA_DIR":    filepath.Join(e.dir, "data"),
		"SENDWERK_DNS_SERVERS": e.dns.addr,
		// One key sends everything here; the per-key request limit protects a shared server
		// from one runaway client and would only measure itself.
		"SENDWERK_API_KEY_RATE_LIMIT": "1000000",
		// The relay host is measured on a free loopback port (STARTTLS submission);
		// implicit TLS is off so no default port can collide with another server's.
		"SENDWERK_SMTP_ADDR":     "127.0.0.1:" + strconv.Itoa(smtpPort),
		"SENDWERK_SMTPS_ADDR":    "off",
		"SENDWERK_TLS_CERT_FILE": relayCert,
		"SENDWERK_TLS_KEY_FILE":  relayKey,
		// All submission sessions come from 127.0.0.1.
		"SENDWERK_SMTP_MAX_CONNS_PER_IP": "1000",
		// The development inbox and DNS are not measured; off, their default ports cannot
		// collide either.
		"SENDWERK_DEV_INBOX_ADDR": "off",
		"SENDWERK_DEV_DNS_ADDR":   "off",
	}
	for k, v := range e.o.env {
		srvEnv[k] = v
	}
	if e.srv, err = startServer(e.o.bin, e.dir, srvEnv, e.swCPU); err != nil {
		return err
	}
	e.srv.smtpAddr = "127.0.0.1:" + strconv.Itoa(smtpPort)
	if e.tenant, err = setupTenant(ctx, e.srv.baseURL, adminToken, e.sink.addr.Port, e.dns); err != nil {
		return err
	}
	if e.tenant.relayUser, e.tenant.relayPass, err = relayCredential(ctx, e.srv.baseURL, e.tenant.key, e.tenant.connectorID); err != nil {
		return err
	}
	e.load = newSubmitter(e.srv.baseURL, e.tenant.key, e.plan.MessageBytes)
	e.res = newResults(e)
	return nil
}

func (e *env) parseDBURL() error {
	// pgembed's URL names the socket directory and port in its query.
	i := strings.IndexByte(e.dbURL, '?')
	if i < 0 {
		return fmt.Errorf("unexpected database URL %s", e.dbURL)
	}
	for _, kv := range strings.Split(e.dbURL[i+1:], "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "host":
			e.pgHost = v
		case "port":
			e.pgPort = v
		}
	}
	if e.pgHost == "" || e.pgPort == "" {
		return fmt.Errorf("no socket directory in database URL %s", e.dbURL)
	}
	return nil
}

// addPostgresToGroup moves the postmaster and its current children into the PostgreSQL
// group; backends forked later inherit it.
func (e *env) addPostgresToGroup() error {
	pids := pidFromFile(filepath.Join(e.dir, "pg", "data", "postmaster.pid"))
	if len(pids) == 0 {
		return errors.New("no postmaster.pid")
	}
	if err := e.pgCPU.add(pids[0]); err != nil {
		return fmt.Errorf("error moving postgres into its cgroup: %w", err)
	}
	if e.pgCPU.dir != "" {
		for _, c := range childrenOf(pids[0]) {
			_ = e.pgCPU.add(c)
		}
	}
	return nil
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.stop()
	}
	if e.stats != nil {
		e.stats.close()
	}
	if e.postfix != nil {
		e.postfix.stop()
	}
	if e.cluster != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.cluster.Stop(sctx)
		cancel()
	}
	if e.sink != nil {
		e.sink.close()
	}
	if e.dns != nil {
		e.dns.close()
	}
	for _, g := range []*cpuGroup{e.swCPU, e.pgCPU, e.pfCPU} {
		if g != nil {
			g.close()
		}
	}
}

// smoke sends one signed and one unsigned message through and checks what arrived.
func (e *env) smoke(ctx context.Context) error {
	e.sink.reset()
	for _, from := range []string{senderDKIM, senderUnsigned} {
		acc, err := e.load.submit(ctx, e.load.body(from, nil), true)
		if err != nil {
			return fmt.Errorf("smoke test: %w", err)
		}
		select {
		case <-e.sink.waitCount(1):
		case <-time.After(30 * time.Second):
			return fmt.Errorf("smoke test: message %s from %s did not reach the sink in 30 s; see %s", acc.ID, from, e.srv.logPath)
		}
		if _, ok := e.sink.arrival(acc.MessageID); !ok {
			return fmt.Errorf("smoke test: the sink got a message without Message-ID %s", acc.MessageID)
		}
		if signed := e.sink.signed.Load() == 1; signed != (from == senderDKIM) {
			return fmt.Errorf("smoke test: message from %s arrived with DKIM signature = %v", from, signed)
		}
		e.sink.reset()
	}
	progress("smoke test passed: signed and unsigned messages delivered")
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func pidFromFile(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(line), &pid); err != nil {
		return nil
	}
	return []int{pid}
}

func childrenOf(ppid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		b, err := os.ReadFile("/proc/" + en.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(en.Name())
		parent, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && parent == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// settle lets background work (River's completer, job cleaner, Postfix's queue manager)
// finish between measurements.
func (e *env) settle() { time.Sleep(time.Duration(e.plan.SettleSeconds * float64(time.Second))) }

// dumpStatements writes pg_stat_statements' costliest statements (the -pgss flag).
func (e *env) dumpStatements(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows,
		shared_blks_hit + shared_blks_read, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %10s %8s %8s %10s  %s\n", "calls", "total ms", "mean ms", "rows", "blocks", "query")
	for rows.Next() {
		var calls, nrows, blks int64
		var total, mean float64
		var q string
		if err := rows.Scan(&calls, &total, &mean, &nrows, &blks, &q); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%8d %10.1f %8.3f %8d %10d  %s\n", calls, total, mean, nrows, blks, q)
	}
	path := filepath.Join(e.dir, "pg_stat_statements.txt")
	progress("wrote %s", path)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
