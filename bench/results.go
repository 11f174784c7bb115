package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sendwerk/sendwerk/internal/config"
)

// results is bench/results.json.
type results struct {
	GeneratedAt     time.Time         `json:"generated_at"`
	DurationSeconds float64           `json:"duration_seconds"`
	Machine         machine           `json:"machine"`
	Plan            plan              `json:"plan"`
	ServerEnv       map[string]string `json:"server_env"`
	Settings        map[string]string `json:"settings"`
	PostgreSQL      string            `json:"postgresql"`
	CPUMethod       cpuMethod         `json:"cpu_method"`
	Notes           []string          `json:"notes"`
	// StatementsPerAccepted is what one accepted single submit costs in statements.
	StatementsPerAccepted float64 `json:"sql_statements_per_accepted,omitempty"`

	Submit     []submitRow       `json:"submit,omitempty"`
	Batch      *batchResult      `json:"batch,omitempty"`
	Relay      *relayResult      `json:"relay,omitempty"`
	Submission *submissionResult `json:"submission,omitempty"`
	Latency    *latencyRes       `json:"latency,omitempty"`
	DKIM       *dkimResult       `json:"dkim,omitempty"`
}

type machine struct {
	CPUs      int     `json:"cpus"`
	Model     string  `json:"cpu_model"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go"`
	LoadAvg   string  `json:"loadavg_at_start"`
	MemoryGB  float64 `json:"memory_gb"`
}

type cpuMethod struct {
	Sendwerk string `json:"sendwerk"`
	Postfix  string `json:"postfix"`
}

type submitRow struct {
	Concurrency int            `json:"concurrency"`
	Sendwerk    rateLatency    `json:"sendwerk"`
	PGBench     rateLatency    `json:"pgbench"`
	Ratio       float64        `json:"ratio"`
	Goal        *float64       `json:"goal,omitempty"`
	Errors      int            `json:"errors,omitempty"`
	FirstError  string         `json:"first_error,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
}

type rateLatency struct {
	PerSecond float64 `json:"per_s"`
	Count     int     `json:"count"`
	latencySummary
}

type batchResult struct {
	BatchSize    int            `json:"batch_size"`
	Clients      int            `json:"clients"`
	MsgsPerS     float64        `json:"messages_per_s"`
	Batches      int            `json:"batches"`
	BatchLatency latencySummary `json:"batch_latency"`
	Errors       int            `json:"errors,omitempty"`
	FirstError   string         `json:"first_error,omitempty"`
}

type relayRun struct {
	Name          string  `json:"name"`
	Messages      int     `json:"messages"`
	AcceptedPerS  float64 `json:"accepted_per_s"`
	EndToEndPerS  float64 `json:"end_to_end_per_s"`
	AcceptSeconds float64 `json:"accept_seconds"`
	EndSeconds    float64 `json:"end_to_end_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	ServerCPU     float64 `json:"server_cpu_seconds,omitempty"`
	PostgresCPU   float64 `json:"postgres_cpu_seconds,omitempty"`
	CPUPer1000    float64 `json:"cpu_seconds_per_1000"`
	Signed        int64   `json:"dkim_signed_at_sink"`
	// StatementsPerMessage is what PostgreSQL ran per message, accepted and delivered
	// (pg_stat_statements, top level, whole database).
	StatementsPerMessage float64 `json:"sql_statements_per_message,omitempty"`
	Command              string  `json:"command,omitempty"`
}

type relayResult struct {
	Postfix      relayRun `json:"postfix"`
	PostfixReuse relayRun `json:"postfix_connections_reused"`
	Unsigned     relayRun `json:"sendwerk_unsigned"`
	DKIM         relayRun `json:"sendwerk_dkim"`
	RatioAccept  ratios   `json:"ratio_accepted"`
	RatioEnd     ratios   `json:"ratio_end_to_end"`
	RatioCPU     ratios   `json:"ratio_cpu_per_1000"`
	// The same against Postfix fed over reused connections.
	ReuseRatioAccept ratios `json:"reuse_ratio_accepted"`
	ReuseRatioEnd    ratios `json:"reuse_ratio_end_to_end"`
	ReuseRatioCPU    ratios `json:"reuse_ratio_cpu_per_1000"`
	// Issue 13's goals against Postfix with a connection per message: without DKIM accepted
	// and end to end at least GoalAccepted and GoalEnd times Postfix's, with RSA DKIM at least
	// GoalDKIM times, and CPU per message at most GoalCPU times Postfix's.
	GoalAccepted float64 `json:"goal_accepted"`
	GoalEnd      float64 `json:"goal_end_to_end"`
	GoalDKIM     float64 `json:"goal_dkim"`
	GoalCPU      float64 `json:"goal_cpu_at_most"`
}

type ratios struct {
	Unsigned float64 `json:"sendwerk_unsigned_vs_postfix"`
	DKIM     float64 `json:"sendwerk_dkim_vs_postfix"`
}

type latencyRes struct {
	Rate     int            `json:"rate_per_s"`
	Seconds  float64        `json:"seconds"`
	Sendwerk latencySummary `json:"sendwerk_dkim"`
	// SendwerkUnsigned is like for like with Postfix, which signs nothing.
	SendwerkUnsigned latencySummary `json:"sendwerk_unsigned"`
	Postfix          latencySummary `json:"postfix"`
	// Until the submission was answered (202, or 250 after DATA).
	SendwerkAccept         latencySummary `json:"sendwerk_dkim_accept"`
	SendwerkUnsignedAccept latencySummary `json:"sendwerk_unsigned_accept"`
	PostfixAccept          latencySummary `json:"postfix_accept"`
	Lost                   map[string]int `json:"not_arrived,omitempty"`
}

func newResults(e *env) *results {
	r := &results{GeneratedAt: time.Now().UTC().Truncate(time.Second), Plan: e.plan, ServerEnv: map[string]string{}}
	r.Machine = machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Model: cpuModel(), Kernel: firstLine("/proc/sys/kernel/osrelease"), LoadAvg: firstLine("/proc/loadavg"), MemoryGB: memGB()}
	if e.srv == nil {
		return r // only in-process phases (dkim): no server, cluster or Postfix
	}
	for k, v := range e.srv.env {
		switch k {
		case "SENDWERK_ADMIN_TOKEN", "SENDWERK_SECRET_KEY", "DATABASE_URL", "SENDWERK_HTTP_ADDR", "SENDWERK_DATA_DIR", "SENDWERK_DNS_SERVERS",
			"SENDWERK_SMTP_ADDR", "SENDWERK_SMTPS_ADDR", "SENDWERK_TLS_CERT_FILE", "SENDWERK_TLS_KEY_FILE":
			continue // secrets, and paths of this run's machine
		}
		r.ServerEnv[k] = v
	}
	// The settings that shape throughput, as the server ran with them (defaults unless
	// overridden), read from the same source tree's table.
	r.Settings = map[string]string{}
	for _, v := range config.Vars() {
		switch v.Name {
		case "SENDWERK_DB_MAX_CONNS", "SENDWERK_DELIVERY_WORKERS", "SENDWERK_SMTP_POOL_SIZE", "SENDWERK_JOB_FETCH_COOLDOWN",
			"SENDWERK_JOB_WORKERS", "SENDWERK_LOG_LEVEL", "SENDWERK_API_KEY_RATE_LIMIT":
			r.Settings[v.Name] = v.Default
			if o, ok := e.srv.env[v.Name]; ok {
				r.Settings[v.Name] = o
			}
		}
	}
	r.PostgreSQL = "15, pgembed durable cluster: fsync=on, synchronous_commit=on, full_page_writes=on, defaults otherwise (max_connections=200); unix socket"
	r.CPUMethod = cpuMethod{
		Sendwerk: e.swCPU.method() + " of sendwerk serve plus that of the PostgreSQL cluster (postmaster, backends, background processes), each in its own group",
		Postfix:  e.pfCPU.method() + " of every Postfix process (master, smtpd, cleanup, qmgr, trivial-rewrite, smtp, …)",
	}
	r.Notes = []string{
		"Load generators (HTTP clients, smtp-source), the SMTP sink and the DNS server run on the same machine and are not counted in CPU figures.",
		"Single-message and batch submits carry send_at one day ahead, so no delivery runs during those phases; the SQL is the same as for immediate messages.",
	}
	return r
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memGB() float64 {
	b, _ := os.ReadFile("/proc/meminfo")
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // MemTotal: N kB
	if len(f) < 2 {
		return 0
	}
	kb, _ := strconv.ParseFloat(f[1], 64)
	return float64(int(kb/1024/1024*10)) / 10
}

func firstLine(path string) string {
	b, _ := os.ReadFile(path)
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(l)
}

// print writes the table.
func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nSendwerk benchmark — %s, %d CPUs (%s), %s, quick=%v, %.0f s\n", r.GeneratedAt.Format(time.RFC3339), r.Machine.CPUs, r.Machine.Model, r.Machine.GoVersion, r.Plan.Quick, r.DurationSeconds)
	keys := make([]string, 0, len(r.Settings))
	for k := range r.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var env []string
	for _, k := range keys {
		env = append(env, k+"="+r.Settings[k])
	}
	fmt.Fprintf(w, "server settings: %s\n\n", strings.Join(env, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Submit) > 0 {
		fmt.Fprintln(w, "1. Single-message submit (REST, 2 KB, DKIM domain) beside pgbench running the same SQL")
		fmt.Fprintln(tw, "concurrency\tSendwerk msg/s\tp50 ms\tp99 ms\tpgbench tx/s\tp50 ms\tp99 ms\tratio\tgoal\t")
		for _, s := range r.Submit {
			goal := ""
			if s.Goal != nil {
				goal = fmt.Sprintf("≥ %.1f", *s.Goal)
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%.2f\t%s\t\n", s.Concurrency, s.Sendwerk.PerSecond, s.Sendwerk.P50ms, s.Sendwerk.P99ms,
				s.PGBench.PerSecond, s.PGBench.P50ms, s.PGBench.P99ms, s.Ratio, goal)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if b := r.Batch; b != nil {
		fmt.Fprintf(w, "2. Batch submit: %d-message batches, %d clients: %.0f messages/s (batch p50 %.0f ms, p99 %.0f ms, %d batches)\n\n",
			b.BatchSize, b.Clients, b.MsgsPerS, b.BatchLatency.P50ms, b.BatchLatency.P99ms, b.Batches)
	}
	if rl := r.Relay; rl != nil {
		fmt.Fprintf(w, "3. Against Postfix: %d messages of %d bytes, %d parallel submitters, relayed to a discarding sink\n", rl.Postfix.Messages, r.Plan.MessageBytes, r.Plan.RelaySubmitters)
		fmt.Fprintln(tw, "\taccepted msg/s\tend-to-end msg/s\tCPU s / 1000 msgs\t× Postfix accepted\tend to end\tCPU\t")
		for _, p := range []relayRun{rl.Postfix, rl.PostfixReuse} {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t\t\t\t\n", p.Name, p.AcceptedPerS, p.EndToEndPerS, p.CPUPer1000)
		}
		pair := func(a, b float64) string { return fmt.Sprintf("%.2f (%.2f)", a, b) }
		for _, s := range []struct {
			r         relayRun
			a, ra, e  float64
			re, c, rc float64
		}{
			{rl.Unsigned, rl.RatioAccept.Unsigned, rl.ReuseRatioAccept.Unsigned, rl.RatioEnd.Unsigned, rl.ReuseRatioEnd.Unsigned, rl.RatioCPU.Unsigned, rl.ReuseRatioCPU.Unsigned},
			{rl.DKIM, rl.RatioAccept.DKIM, rl.ReuseRatioAccept.DKIM, rl.RatioEnd.DKIM, rl.ReuseRatioEnd.DKIM, rl.RatioCPU.DKIM, rl.ReuseRatioCPU.DKIM},
		} {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%s\t%s\t%s\t\n", s.r.Name, s.r.AcceptedPerS, s.r.EndToEndPerS, s.r.CPUPer1000, pair(s.a, s.ra), pair(s.e, s.re), pair(s.c, s.rc))
		}
		fmt.Fprintf(tw, "goal, no DKIM\t\t\t\t≥ %.1f\t≥ %.1f\t≤ %.1f\t\n", rl.GoalAccepted, rl.GoalEnd, rl.GoalCPU)
		fmt.Fprintf(tw, "goal, DKIM\t\t\t\t≥ %.1f\t≥ %.1f\t\t\n", rl.GoalDKIM, rl.GoalDKIM)
		_ = tw.Flush()
		fmt.Fprintf(w, "   ratios against Postfix with a connection per message (the issue's smtp-source command); in parentheses against -d\n")
		fmt.Fprintf(w, "   %s\n   %s\n\n", rl.Postfix.Command, rl.PostfixReuse.Command)
	}
	if sb := r.Submission; sb != nil {
		fmt.Fprintf(w, "3b. SMTP submission with STARTTLS + AUTH PLAIN: %d messages, %d sessions at a time, %d messages per session, relayed to the sink\n",
			sb.Postfix.Messages, sb.Sessions, sb.PerSession)
		fmt.Fprintln(tw, "\taccepted msg/s\tend-to-end msg/s\tCPU s / 1000 msgs\t× Postfix accepted\tend to end\tCPU\t")
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t\t\t\t\n", sb.Postfix.Name, sb.Postfix.AcceptedPerS, sb.Postfix.EndToEndPerS, sb.Postfix.CPUPer1000)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", sb.Unsigned.Name, sb.Unsigned.AcceptedPerS, sb.Unsigned.EndToEndPerS, sb.Unsigned.CPUPer1000,
			sb.RatioAccept.Unsigned, sb.RatioEnd.Unsigned, sb.RatioCPU.Unsigned)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", sb.DKIM.Name, sb.DKIM.AcceptedPerS, sb.DKIM.EndToEndPerS, sb.DKIM.CPUPer1000,
			sb.RatioAccept.DKIM, sb.RatioEnd.DKIM, sb.RatioCPU.DKIM)
		fmt.Fprintf(tw, "goal\t\t\t\t≥ %.1f\t\t\t\n", sb.Goal)
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "4. Submit → delivered at a steady %d messages/s for %.0f s\n", l.Rate, l.Seconds)
		fmt.Fprintln(tw, "\tmessages\tp50 ms\tp99 ms\tmax ms\taccepted after p50 ms\tp99 ms\t")
		fmt.Fprintf(tw, "Sendwerk (REST, DKIM)\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", l.Sendwerk.N, l.Sendwerk.P50ms, l.Sendwerk.P99ms, l.Sendwerk.Maxms, l.SendwerkAccept.P50ms, l.SendwerkAccept.P99ms)
		if l.SendwerkUnsigned.N > 0 {
			fmt.Fprintf(tw, "Sendwerk (REST, no DKIM)\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", l.SendwerkUnsigned.N, l.SendwerkUnsigned.P50ms, l.SendwerkUnsigned.P99ms, l.SendwerkUnsigned.Maxms, l.SendwerkUnsignedAccept.P50ms, l.SendwerkUnsignedAccept.P99ms)
		}
		fmt.Fprintf(tw, "Postfix (SMTP)\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", l.Postfix.N, l.Postfix.P50ms, l.Postfix.P99ms, l.Postfix.Maxms, l.PostfixAccept.P50ms, l.PostfixAccept.P99ms)
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if r.StatementsPerAccepted > 0 || (r.Relay != nil && r.Relay.Unsigned.StatementsPerMessage > 0) {
		fmt.Fprint(w, "SQL statements (pg_stat_statements, top level):")
		sep := " "
		if r.StatementsPerAccepted > 0 { // counted only when the submit phase ran
			fmt.Fprintf(w, " per accepted single submit %.1f", r.StatementsPerAccepted)
			sep = "; "
		}
		if rl := r.Relay; rl != nil {
			fmt.Fprintf(w, "%sper message accepted and delivered %.1f (no DKIM), %.1f (DKIM)", sep, rl.Unsigned.StatementsPerMessage, rl.DKIM.StatementsPerMessage)
			if r.StatementsPerAccepted > 0 {
				fmt.Fprintf(w, "; so about %.1f per delivery", rl.Unsigned.StatementsPerMessage-r.StatementsPerAccepted)
			}
		}
		if sb := r.Submission; sb != nil {
			fmt.Fprintf(w, "; per message over the relay host %.1f", sb.Unsigned.StatementsPerMessage)
		}
		fmt.Fprintln(w)
	}
	if r.DKIM != nil {
		r.DKIM.print(w)
	}
	if r.CPUMethod.Sendwerk == "" {
		return // only in-process phases ran
	}
	fmt.Fprintf(w, "5. CPU: Sendwerk = %s\n        Postfix  = %s\n", r.CPUMethod.Sendwerk, r.CPUMethod.Postfix)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
