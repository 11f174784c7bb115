package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The machine is shared and noisy, so one run proves little: `make bench` makes several
// complete, independent runs one after another and reports, for every figure of the
// single-run table, its min / median / max across the runs. A ratio against a peer is
// taken within each run (the peer ran beside Sendwerk on the same machine at the same
// time) and only then summarized; goals are judged on the median.

// runCount reads -runs (or BENCH_RUNS): empty means 3 for a full run and 1 for -quick.
func runCount(s string, quick bool) (int, error) {
	if s = strings.TrimSpace(s); s == "" {
		if quick {
			return 1, nil
		}
		return 3, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("-runs (BENCH_RUNS) wants a whole number of runs ≥ 1, got %q", s)
	}
	return n, nil
}

// runDir is the work directory of run i (1-based) of n: -dir itself for a single run,
// -dir/run<i> for several, and a new temporary directory when -dir is not given.
func runDir(workDir string, i, n int) string {
	if workDir == "" || n == 1 {
		return workDir
	}
	return filepath.Join(workDir, fmt.Sprintf("run%d", i))
}

// benchFile is bench/results.json: every run's results as one run writes them, and the
// summary across them.
type benchFile struct {
	GeneratedAt     time.Time `json:"generated_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	Machine         machine   `json:"machine"`
	RunsRequested   int       `json:"runs_requested"`
	RunCount        int       `json:"run_count"`
	// MedianOf says how the median of an even number of runs is taken.
	MedianOf string     `json:"median_convention"`
	Summary  summary    `json:"summary"`
	Runs     []*results `json:"runs"`
}

const medianConvention = "the middle value of the sorted runs; for an even count the mean of the two middle values"

// benchRuns makes o.runs complete runs (a sweep makes one), prints each run's table and
// then the summary, and writes the results file. When a run fails after others completed,
// the completed ones are still summarized and written (runs_requested says how many were
// meant), unless the benchmark was interrupted.
func benchRuns(ctx context.Context, o options) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: PostgreSQL and Postfix are started as their own users, and Postfix needs root")
	}
	if o.bin == "" && needsEnvironment(o) {
		dir, cleanup, err := binaryDir(o)
		if err != nil {
			return err
		}
		defer cleanup()
		if o.bin, err = buildBinary(ctx, dir); err != nil {
			return err
		}
	}
	if o.sweep != "" {
		_, err := runOnce(ctx, o)
		return err
	}
	started := time.Now()
	var runs []*results
	var runErr error
	for i := 1; i <= o.runs; i++ {
		ro := o
		ro.workDir = runDir(o.workDir, i, o.runs)
		if o.runs > 1 {
			progress("run %d of %d", i, o.runs)
			fmt.Printf("\n=== run %d of %d ===\n", i, o.runs)
		}
		res, err := runOnce(ctx, ro)
		if err != nil {
			runErr = err
			if o.runs > 1 {
				runErr = fmt.Errorf("run %d of %d: %w", i, o.runs, err)
			}
			break
		}
		runs = append(runs, res)
	}
	if len(runs) == 0 || ctx.Err() != nil {
		return runErr
	}
	f := newBenchFile(runs, o.runs, time.Since(started).Seconds())
	if len(runs) > 1 {
		f.Summary.print(os.Stdout, len(runs))
	}
	if o.out != "" {
		if err := f.write(o.out); err != nil {
			return errors.Join(runErr, err)
		}
		progress("wrote %s (%d of %d runs)", o.out, len(runs), o.runs)
	}
	return runErr
}

// binaryDir is where the server binary is built once for all runs: -dir, or a temporary
// directory removed afterwards unless -keep.
func binaryDir(o options) (string, func(), error) {
	if o.workDir != "" {
		return o.workDir, func() {}, os.MkdirAll(o.workDir, 0o755)
	}
	dir, err := os.MkdirTemp("", "swbbin")
	if err != nil {
		return "", nil, err
	}
	if o.keep {
		return dir, func() {}, nil
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

func buildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sendwerk")
	progress("building ./cmd/sendwerk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sendwerk")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
}

func newBenchFile(runs []*results, requested int, seconds float64) *benchFile {
	return &benchFile{
		GeneratedAt: time.Now().UTC().Truncate(time.Second), DurationSeconds: seconds, Machine: runs[0].Machine,
		RunsRequested: requested, RunCount: len(runs), MedianOf: medianConvention,
		Summary: summarizeRuns(runs), Runs: runs,
	}
}

func (f *benchFile) write(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// goal is what a figure should reach, as the single-run table states it.
type goal struct {
	Op    string  `json:"op"` // ">=" or "<="
	Value float64 `json:"value"`
}

func atLeast(v float64) *goal { return &goal{Op: ">=", Value: v} }

func atMost(v float64) *goal { return &goal{Op: "<=", Value: v} }

// optional is g, or nil when the goal is not set (results written before it existed).
func optional(g *goal) *goal {
	if g == nil || g.Value == 0 {
		return nil
	}
	return g
}

func (g goal) met(v float64) bool {
	if g.Op == "<=" {
		return v <= g.Value
	}
	return v >= g.Value
}

func (g goal) String() string {
	op := "≥"
	if g.Op == "<=" {
		op = "≤"
	}
	return fmt.Sprintf("%s %s", op, strconv.FormatFloat(g.Value, 'f', -1, 64))
}

// figure is one number of one run's table, under a stable key: dot-separated, lower case,
// <section>.<subject>.<measure> with the single-run JSON's names where it has them, e.g.
// submit.c16.ratio_vs_pgbench or relay.sendwerk_dkim.ratio_accepted_vs_postfix.
type figure struct {
	Key      string
	Section  string
	Label    string
	Unit     string
	Decimals int
	Goal     *goal
	Value    float64
}

// figures lists every figure one run's table reports, in the table's order; a phase that
// did not run, or a count that was not taken, contributes nothing.
func figures(r *results) []figure {
	var fs []figure
	add := func(section, key, label, unit string, decimals int, v float64, g *goal) {
		fs = append(fs, figure{Key: key, Section: section, Label: label, Unit: unit, Decimals: decimals, Goal: g, Value: v})
	}
	div := func(a, b float64) (float64, bool) {
		if b == 0 {
			return 0, false
		}
		return a / b, true
	}

	const sub = "1. single-message submit, beside pgbench running the same SQL"
	for _, s := range r.Submit {
		k, l := fmt.Sprintf("submit.c%d.", s.Concurrency), fmt.Sprintf("c=%d ", s.Concurrency)
		add(sub, k+"sendwerk_per_s", l+"Sendwerk msg/s", "msg/s", 0, s.Sendwerk.PerSecond, nil)
		add(sub, k+"sendwerk_p50_ms", l+"Sendwerk p50 ms", "ms", 1, s.Sendwerk.P50ms, nil)
		add(sub, k+"sendwerk_p99_ms", l+"Sendwerk p99 ms", "ms", 1, s.Sendwerk.P99ms, nil)
		add(sub, k+"pgbench_per_s", l+"pgbench tx/s", "tx/s", 0, s.PGBench.PerSecond, nil)
		add(sub, k+"pgbench_p50_ms", l+"pgbench p50 ms", "ms", 1, s.PGBench.P50ms, nil)
		add(sub, k+"pgbench_p99_ms", l+"pgbench p99 ms", "ms", 1, s.PGBench.P99ms, nil)
		var g *goal
		if s.Goal != nil {
			g = atLeast(*s.Goal)
		}
		add(sub, k+"ratio_vs_pgbench", l+"ratio Sendwerk / pgbench", "ratio", 2, s.Ratio, g)
	}

	if b := r.Batch; b != nil {
		const sec = "2. batch submit"
		add(sec, "batch.messages_per_s", fmt.Sprintf("%d-message batches, %d clients msg/s", b.BatchSize, b.Clients), "msg/s", 0, b.MsgsPerS, nil)
		add(sec, "batch.batch_p50_ms", "batch p50 ms", "ms", 0, b.BatchLatency.P50ms, nil)
		add(sec, "batch.batch_p99_ms", "batch p99 ms", "ms", 0, b.BatchLatency.P99ms, nil)
	}

	// Relay runs and SMTP submission runs share their columns.
	runFigures := func(sec, prefix string, run relayRun) {
		add(sec, prefix+".accepted_per_s", run.Name+": accepted msg/s", "msg/s", 0, run.AcceptedPerS, nil)
		add(sec, prefix+".end_to_end_per_s", run.Name+": end-to-end msg/s", "msg/s", 0, run.EndToEndPerS, nil)
		add(sec, prefix+".cpu_s_per_1000", run.Name+": CPU s / 1000 msgs", "CPU s / 1000", 2, run.CPUPer1000, nil)
	}
	type peer struct{ key, label string }
	ratioFigures := func(sec, prefix, name string, vs peer, accept, end, cpu float64, gAccept, gEnd, gCPU *goal) {
		add(sec, prefix+".ratio_accepted_vs_"+vs.key, name+": accepted × "+vs.label, "ratio", 2, accept, optional(gAccept))
		add(sec, prefix+".ratio_end_to_end_vs_"+vs.key, name+": end to end × "+vs.label, "ratio", 2, end, optional(gEnd))
		add(sec, prefix+".ratio_cpu_vs_"+vs.key, name+": CPU × "+vs.label, "ratio", 2, cpu, optional(gCPU))
	}
	postfix, postfixReuse := peer{"postfix", "Postfix"}, peer{"postfix_connections_reused", "Postfix -d"}
	if rl := r.Relay; rl != nil {
		const sec = "3. relayed to the sink, against Postfix (ratios within each run)"
		runFigures(sec, "relay.postfix", rl.Postfix)
		runFigures(sec, "relay.postfix_connections_reused", rl.PostfixReuse)
		for _, s := range []struct {
			key        string
			run        relayRun
			acc, end   float64
			cpu        float64
			racc, rnd  float64
			rcpu       float64
			gAcc, gEnd *goal
			gCPU       *goal
		}{
			{"relay.sendwerk_unsigned", rl.Unsigned, rl.RatioAccept.Unsigned, rl.RatioEnd.Unsigned, rl.RatioCPU.Unsigned,
				rl.ReuseRatioAccept.Unsigned, rl.ReuseRatioEnd.Unsigned, rl.ReuseRatioCPU.Unsigned,
				atLeast(rl.GoalAccepted), atLeast(rl.GoalEnd), atMost(rl.GoalCPU)},
			{"relay.sendwerk_dkim", rl.DKIM, rl.RatioAccept.DKIM, rl.RatioEnd.DKIM, rl.RatioCPU.DKIM,
				rl.ReuseRatioAccept.DKIM, rl.ReuseRatioEnd.DKIM, rl.ReuseRatioCPU.DKIM,
				atLeast(rl.GoalDKIM), atLeast(rl.GoalDKIM), nil},
		} {
			runFigures(sec, s.key, s.run)
			ratioFigures(sec, s.key, s.run.Name, postfix, s.acc, s.end, s.cpu, s.gAcc, s.gEnd, s.gCPU)
			ratioFigures(sec, s.key, s.run.Name, postfixReuse, s.racc, s.rnd, s.rcpu, nil, nil, nil)
		}
	}

	if sb := r.Submission; sb != nil {
		const sec = "3b. SMTP submission (STARTTLS + AUTH), against Postfix's submission service"
		runFigures(sec, "submission.postfix", sb.Postfix)
		runFigures(sec, "submission.sendwerk_unsigned", sb.Unsigned)
		ratioFigures(sec, "submission.sendwerk_unsigned", sb.Unsigned.Name, postfix, sb.RatioAccept.Unsigned, sb.RatioEnd.Unsigned, sb.RatioCPU.Unsigned, atLeast(sb.Goal), nil, nil)
		runFigures(sec, "submission.sendwerk_dkim", sb.DKIM)
		ratioFigures(sec, "submission.sendwerk_dkim", sb.DKIM.Name, postfix, sb.RatioAccept.DKIM, sb.RatioEnd.DKIM, sb.RatioCPU.DKIM, atLeast(sb.Goal), nil, nil)
	}

	if l := r.Latency; l != nil {
		const sec = "4. submit → delivered at a steady rate"
		for _, s := range []struct {
			key, name   string
			done, taken latencySummary
		}{{"latency.sendwerk_dkim", "Sendwerk (REST, DKIM)", l.Sendwerk, l.SendwerkAccept},
			{"latency.sendwerk_unsigned", "Sendwerk (REST, no DKIM)", l.SendwerkUnsigned, l.SendwerkUnsignedAccept},
			{"latency.postfix", "Postfix (SMTP)", l.Postfix, l.PostfixAccept}} {
			if s.key == "latency.sendwerk_unsigned" && s.done.N == 0 {
				continue // a results file from before the unsigned run
			}
			add(sec, s.key+".p50_ms", s.name+": delivered p50 ms", "ms", 1, s.done.P50ms, nil)
			add(sec, s.key+".p99_ms", s.name+": delivered p99 ms", "ms", 1, s.done.P99ms, nil)
			add(sec, s.key+".max_ms", s.name+": delivered max ms", "ms", 1, s.done.Maxms, nil)
			add(sec, s.key+".accept_p50_ms", s.name+": accepted after p50 ms", "ms", 1, s.taken.P50ms, nil)
			add(sec, s.key+".accept_p99_ms", s.name+": accepted after p99 ms", "ms", 1, s.taken.P99ms, nil)
		}
		if v, ok := div(l.Sendwerk.P99ms, l.Postfix.P99ms); ok {
			add(sec, "latency.p99_ratio_sendwerk_vs_postfix", "delivered p99 Sendwerk (DKIM) / Postfix", "ratio", 2, v, atMost(1))
		}
		if v, ok := div(l.SendwerkUnsigned.P99ms, l.Postfix.P99ms); ok && l.SendwerkUnsigned.N > 0 {
			add(sec, "latency.p99_ratio_unsigned_vs_postfix", "delivered p99 Sendwerk (no DKIM) / Postfix, like for like", "ratio", 2, v, atMost(1))
		}
	}

	const stm = "SQL statements (pg_stat_statements, top level)"
	if r.StatementsPerAccepted > 0 {
		add(stm, "statements.per_accepted_submit", "per accepted single submit", "statements", 1, r.StatementsPerAccepted, nil)
	}
	if rl := r.Relay; rl != nil && rl.Unsigned.StatementsPerMessage > 0 {
		add(stm, "statements.relay_unsigned_per_message", "per message accepted and delivered, no DKIM", "statements", 1, rl.Unsigned.StatementsPerMessage, nil)
		add(stm, "statements.relay_dkim_per_message", "per message accepted and delivered, DKIM", "statements", 1, rl.DKIM.StatementsPerMessage, nil)
		if r.StatementsPerAccepted > 0 {
			add(stm, "statements.per_delivery", "per delivery (no DKIM minus per accepted)", "statements", 1, rl.Unsigned.StatementsPerMessage-r.StatementsPerAccepted, nil)
		}
	}
	if sb := r.Submission; sb != nil && sb.Unsigned.StatementsPerMessage > 0 {
		add(stm, "statements.submission_unsigned_per_message", "per message over the relay host, no DKIM", "statements", 1, sb.Unsigned.StatementsPerMessage, nil)
		add(stm, "statements.submission_dkim_per_message", "per message over the relay host, DKIM", "statements", 1, sb.DKIM.StatementsPerMessage, nil)
	}

	const cpu = "5. Sendwerk's CPU split, s / 1000 msgs"
	split := func(key string, run relayRun) {
		if run.ServerCPU+run.PostgresCPU == 0 || run.Messages == 0 {
			return
		}
		k := float64(run.Messages) / 1000
		add(cpu, "cpu."+key+".server_s_per_1000", run.Name+": sendwerk serve", "CPU s / 1000", 2, run.ServerCPU/k, nil)
		add(cpu, "cpu."+key+".postgres_s_per_1000", run.Name+": PostgreSQL", "CPU s / 1000", 2, run.PostgresCPU/k, nil)
	}
	if rl := r.Relay; rl != nil {
		split("relay_unsigned", rl.Unsigned)
		split("relay_dkim", rl.DKIM)
	}
	if sb := r.Submission; sb != nil {
		split("submission_unsigned", sb.Unsigned)
		split("submission_dkim", sb.DKIM)
	}

	if d := r.DKIM; d != nil {
		const sec = "6. DKIM signing cost per message"
		for _, row := range d.Rows {
			add(sec, "dkim."+dkimKey(row.Name)+".us_per_message", row.Name+": CPU µs / message", "µs", 0, row.MicrosPerMsg, nil)
		}
	}
	return fs
}

// dkimKey turns a DKIM row's name ("RSA-2048 (rsa-sha256)") into a key part ("rsa_2048").
func dkimKey(name string) string {
	name, _, _ = strings.Cut(name, " (")
	return strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(name)))
}

// figureSummary is one figure across runs.
type figureSummary struct {
	Section string    `json:"section"`
	Label   string    `json:"label"`
	Unit    string    `json:"unit"`
	Values  []float64 `json:"values"` // one per run that reported the figure, in run order
	Min     float64   `json:"min"`
	Median  float64   `json:"median"`
	Max     float64   `json:"max"`
	Goal    *goal     `json:"goal,omitempty"`
	// MedianMeetsGoal is set where the figure has a goal.
	MedianMeetsGoal *bool `json:"median_meets_goal,omitempty"`
	decimals        int
}

// summary is every figure across runs, keyed as figure.Key, in the table's order (its JSON
// is an object whose keys keep that order).
type summary struct {
	Keys    []string
	Figures map[string]*figureSummary
}

// summarizeRuns takes min / median / max of each figure over the runs that reported it;
// a figure's goal is the first run's (goals are constants of the benchmark).
func summarizeRuns(runs []*results) summary {
	s := summary{Figures: map[string]*figureSummary{}}
	for _, r := range runs {
		for _, f := range figures(r) {
			fs, ok := s.Figures[f.Key]
			if !ok {
				fs = &figureSummary{Section: f.Section, Label: f.Label, Unit: f.Unit, Goal: f.Goal, decimals: f.Decimals}
				s.Figures[f.Key] = fs
				s.Keys = append(s.Keys, f.Key)
			}
			fs.Values = append(fs.Values, f.Value)
		}
	}
	for _, fs := range s.Figures {
		fs.Min, fs.Median, fs.Max = minMedianMax(fs.Values)
		if fs.Goal != nil {
			met := fs.Goal.met(fs.Median)
			fs.MedianMeetsGoal = &met
		}
	}
	return s
}

// minMedianMax of the values; the median of an even count is the mean of the two middle
// values (medianConvention).
func minMedianMax(v []float64) (lo, med, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

func (s summary) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range s.Keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(s.Figures[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (s *summary) UnmarshalJSON(b []byte) error {
	s.Keys, s.Figures = nil, map[string]*figureSummary{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("summary: want an object: %v", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		var f figureSummary
		if err := dec.Decode(&f); err != nil {
			return err
		}
		s.Keys = append(s.Keys, k)
		s.Figures[k] = &f
	}
	return nil
}

// print writes the summary table: each figure's min / median / max, the spread
// (max − min as a share of the median), and the goal judged on the median.
func (s summary) print(w io.Writer, runs int) {
	fmt.Fprintf(w, "\nSummary of %d runs: min / median / max of each figure (each ratio taken within its run, then summarized;\n", runs)
	fmt.Fprintf(w, "median of an even count = mean of the two middle values; goals judged on the median)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	section := ""
	for _, k := range s.Keys {
		f := s.Figures[k]
		if f.Section != section {
			section = f.Section
			_ = tw.Flush()
			fmt.Fprintf(w, "\n%s\n", section)
			fmt.Fprintln(tw, "\tmin\tmedian\tmax\tspread\tgoal\tmedian meets goal\t")
		}
		num := func(v float64) string { return strconv.FormatFloat(v, 'f', f.decimals, 64) }
		spread := ""
		if f.Median != 0 && len(f.Values) > 1 {
			spread = fmt.Sprintf("%.0f %%", math.Abs((f.Max-f.Min)/f.Median)*100)
		}
		g, met := "", ""
		if f.Goal != nil {
			g = f.Goal.String()
			met = "no"
			if *f.MedianMeetsGoal {
				met = "yes"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Label, num(f.Min), num(f.Median), num(f.Max), spread, g, met)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}
