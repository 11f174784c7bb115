package main

// The benchmark itself is not a test (it needs root, Postfix and minutes). These check the
// parts whose mistakes would silently skew its numbers: reading statements back from
// PostgreSQL's log, turning them into the pgbench script, and what the sink records.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseParams(t *testing.T) {
	got, err := parseParams(`parameters: $1 = 'it''s', $2 = NULL, $3 = '{"a": "b, c"}', $4 = ''`)
	require.NoError(t, err)
	require.Len(t, got, 4)
	require.Equal(t, "it's", *got[0])
	require.Nil(t, got[1])
	require.Equal(t, `{"a": "b, c"}`, *got[2])
	require.Equal(t, "", *got[3])

	none, err := parseParams("")
	require.NoError(t, err)
	require.Nil(t, none)

	_, err = parseParams(`parameters: $2 = 'x'`)
	require.Error(t, err, "parameters out of order")
}

func TestPGBenchScript(t *testing.T) {
	p := func(s string) *string { return &s }
	stmts := []loggedStatement{
		{query: "begin"},
		{query: "-- name: MessageInsert :exec\nINSERT INTO messages (id, tenant_id, subject, send_at) VALUES ($1, $2, $3, $4)",
			params: []*string{p("msg_abc"), p("ten_1"), p(""), nil}},
		{query: "-- name: JobInsertFastMany :many\nINSERT INTO river_job(args) SELECT unnest($1::jsonb[]) RETURNING river_job.id",
			params: []*string{p(`{"{\"message_id\": \"msg_abc\"}"}`)}},
		{query: "-- name: MessageSetJobIDs :exec\nUPDATE messages SET job_id = $2::bigint[] WHERE id = $1 AND n = $3",
			params: []*string{p("msg_abc"), p("{42}"), p("{42}")}},
		{query: "-- name: EventInsert :one\nINSERT INTO events (id, message_id, data) VALUES ($1, $2, $3) RETURNING sequence",
			params: []*string{p("evt_06h0abc"), p("msg_abc"), p(`{"message_id": "msg_abc"}`)}},
		{query: "-- name: MessageQueuedInsertMany :exec\nINSERT INTO events (id, message_id) SELECT unnest($1::text[]), unnest($2::text[])",
			params: []*string{p("{evt_06h0def}"), p("{msg_abc}")}},
		{query: "-- name: UsageAdd :exec\nINSERT INTO usage_counters (shard) SELECT unnest($1::smallint[])",
			params: []*string{p("{42}")}},
		{query: "commit"},
	}
	script, vars := pgbenchScript(stmts, "msg_abc", 42)
	require.Contains(t, script, "VALUES (('evt_pgb' || :client_id || 'x' || :r || 'k4'), (replace(:p4_2, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r)), "+
		"(replace(:p4_3, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r))::jsonb)",
		"an event gets a new id per transaction, and JSON naming the message stays jsonb")
	require.Contains(t, script, "\\set r random(")
	require.Contains(t, script, "VALUES ((replace(:p1_1, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r)), :p1_2, '', NULL)")
	require.Contains(t, script, "RETURNING river_job.id\n\\gset j_\n", "the job id is read back for the next statement")
	require.Contains(t, script, "job_id = ('{' || :j_id || '}')::bigint[]")
	require.NotContains(t, script, "-- name:", "comment lines are dropped: pgbench substitutes :names inside them")
	require.True(t, strings.HasPrefix(strings.Split(script, "\n")[2], "begin;"))
	require.NotContains(t, script, "evt_06h0abc")
	require.Contains(t, script, "SELECT unnest(('{evt_pgb' || :client_id || 'x' || :r || 'k5}')::text[])",
		"an array of event ids gets new ids per transaction too")
	require.NotContains(t, script, "evt_06h0def")
	require.Contains(t, script, "unnest(:p6_1::smallint[])", "a usage shard that equals the job id is not the job id")
	require.Contains(t, vars, "p6_1={42}")
	require.Contains(t, vars, "p1_2=ten_1")
	require.Contains(t, vars, `p2_1={"{\"message_id\": \"@MSGID@\"}"}`)
	for _, v := range vars {
		require.NotContains(t, v, "msg_abc", "every message id is made unique per transaction")
		require.NotRegexp(t, `^[^=]+=$`, v, "pgbench -D refuses empty values")
	}
}

func TestSubmissionStatementsPicksOneTransaction(t *testing.T) {
	all := []loggedStatement{
		{pid: "1", query: "-- name: APIKeyGetBySecretHash :one\nSELECT"},
		{pid: "2", query: "begin"},
		{pid: "2", query: "-- name: JobGetAvailable :many\nSELECT"}, // River's fetch on another connection
		{pid: "1", query: "begin"},
		{pid: "1", query: "-- name: MessageInsert :exec\nINSERT"},
		{pid: "2", query: "commit"},
		{pid: "1", query: "-- name: UsageAdd :many\nINSERT"},
		{pid: "1", query: "commit"},
		{pid: "1", query: "-- name: MessageGet :one\nSELECT"}, // the delivery, after the submission
	}
	got, err := submissionStatements(all, []string{"APIKeyGetBySecretHash", "MessageInsert", "UsageAdd", "MessageGet"})
	require.NoError(t, err)
	var qs []string
	for _, s := range got {
		qs = append(qs, strings.SplitN(s.query, "\n", 2)[0])
	}
	require.Equal(t, []string{"-- name: APIKeyGetBySecretHash :one", "begin", "-- name: MessageInsert :exec", "-- name: UsageAdd :many", "commit"}, qs)
}

func TestSinkRecordsMessageIDAndSignature(t *testing.T) {
	s := &sink{arrived: map[string]time.Time{}}
	ss := &sinkSession{s: s}
	require.NoError(t, ss.Data(strings.NewReader("DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\nMessage-ID: <m1@x>\r\nSubject: s\r\n\r\nbody\r\nMessage-ID: <not-a-header@x>\r\n")))
	require.NoError(t, ss.Data(strings.NewReader("message-id:   <m2@x>\r\n\r\nbody\r\n")))
	require.EqualValues(t, 2, s.count.Load())
	require.EqualValues(t, 1, s.signed.Load())
	_, ok := s.arrival("<m1@x>")
	require.True(t, ok)
	_, ok = s.arrival("<m2@x>")
	require.True(t, ok)
	_, ok = s.arrival("<not-a-header@x>")
	require.False(t, ok)
	select {
	case <-s.waitCount(2):
	default:
		t.Fatal("waitCount(2) should be closed after two messages")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(d, 0.50))
	require.Equal(t, 99*time.Millisecond, percentile(d, 0.99))
	require.Equal(t, time.Duration(0), percentile(nil, 0.5))
	s := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	require.Equal(t, 2.0, s.P50ms)
	require.Equal(t, 3.0, s.Maxms)
}

func TestRunCount(t *testing.T) {
	for _, c := range []struct {
		in    string
		quick bool
		want  int
	}{{"", false, 3}, {"", true, 1}, {" 2 ", false, 2}, {"5", true, 5}, {"1", false, 1}} {
		got, err := runCount(c.in, c.quick)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, got, "runCount(%q, quick=%v)", c.in, c.quick)
	}
	for _, bad := range []string{"0", "-1", "three", "2.5"} {
		_, err := runCount(bad, false)
		require.Error(t, err, bad)
	}
	require.Equal(t, "", runDir("", 2, 3), "no -dir: each run makes its own temporary directory")
	require.Equal(t, "/w", runDir("/w", 1, 1), "one run works in -dir itself, as before")
	require.Equal(t, "/w/run2", runDir("/w", 2, 3))
}

func TestMinMedianMax(t *testing.T) {
	lo, med, hi := minMedianMax([]float64{7})
	require.Equal(t, [3]float64{7, 7, 7}, [3]float64{lo, med, hi}, "one run")
	lo, med, hi = minMedianMax([]float64{4, 2})
	require.Equal(t, [3]float64{2, 3, 4}, [3]float64{lo, med, hi}, "two runs: the median is the mean of the middle two")
	in := []float64{9, 1, 5}
	lo, med, hi = minMedianMax(in)
	require.Equal(t, [3]float64{1, 5, 9}, [3]float64{lo, med, hi}, "three runs: the middle one, not the mean (5)")
	require.Equal(t, []float64{9, 1, 5}, in, "the values keep their run order")
	lo, med, hi = minMedianMax([]float64{10, 1, 2, 3})
	require.Equal(t, [3]float64{1, 2.5, 10}, [3]float64{lo, med, hi}, "four runs: mean of the middle two, the outlier ignored")
	lo, med, hi = minMedianMax(nil)
	require.Equal(t, [3]float64{0, 0, 0}, [3]float64{lo, med, hi})
}

// syntheticRun is one run's results as the phases fill them: a submit row at 16 clients
// (goal ≥ 0.5), the relay runs (issue 13's goals: without DKIM ≥ 2 accepted and end to end and
// CPU ≤ 0.7, with DKIM ≥ 1.2) and latencies.
func syntheticRun(submitRatio, relayAccRatio, swAccepted, swP99, pfP99 float64) *results {
	g := 0.5
	return &results{
		StatementsPerAccepted: 6,
		Submit: []submitRow{{Concurrency: 16, Ratio: submitRatio, Goal: &g,
			Sendwerk: rateLatency{PerSecond: 1000 * submitRatio}, PGBench: rateLatency{PerSecond: 1000}}},
		Relay: &relayResult{
			GoalAccepted: 2, GoalEnd: 2, GoalDKIM: 1.2, GoalCPU: 0.7,
			Postfix:     relayRun{Name: "Postfix", Messages: 1000, AcceptedPerS: swAccepted / relayAccRatio, CPUPer1000: 3},
			Unsigned:    relayRun{Name: "Sendwerk, no DKIM", Messages: 1000, AcceptedPerS: swAccepted, ServerCPU: 2, PostgresCPU: 4, StatementsPerMessage: 20},
			DKIM:        relayRun{Name: "Sendwerk, DKIM", Messages: 1000, AcceptedPerS: swAccepted},
			RatioAccept: ratios{Unsigned: relayAccRatio, DKIM: relayAccRatio},
			RatioEnd:    ratios{Unsigned: 1.6, DKIM: 1.4},
			RatioCPU:    ratios{Unsigned: 0.8, DKIM: 1.1},
		},
		Latency: &latencyRes{Sendwerk: latencySummary{P99ms: swP99}, SendwerkUnsigned: latencySummary{N: 3000, P99ms: swP99 / 2}, Postfix: latencySummary{P99ms: pfP99}},
	}
}

func TestSummaryOverOneTwoThreeRuns(t *testing.T) {
	one := summarizeRuns([]*results{syntheticRun(0.4, 1, 300, 20, 10)})
	f := one.Figures["submit.c16.ratio_vs_pgbench"]
	require.NotNil(t, f)
	require.Equal(t, []float64{0.4, 0.4, 0.4}, []float64{f.Min, f.Median, f.Max})
	require.Equal(t, &goal{Op: ">=", Value: 0.5}, f.Goal, "the goal is the one the run's table shows")
	require.False(t, *f.MedianMeetsGoal)
	require.Nil(t, one.Figures["submit.c16.sendwerk_per_s"].Goal, "figures without a goal in the table get none")
	require.Nil(t, one.Figures["submit.c16.sendwerk_per_s"].MedianMeetsGoal)

	two := summarizeRuns([]*results{syntheticRun(0.4, 1, 300, 20, 10), syntheticRun(0.8, 3, 500, 30, 10)})
	f = two.Figures["submit.c16.ratio_vs_pgbench"]
	require.Equal(t, []float64{0.4, 0.8}, f.Values)
	require.InDelta(t, 0.6, f.Median, 1e-9, "an even count's median is the mean of the middle two")
	require.True(t, *f.MedianMeetsGoal, "0.6 ≥ 0.5 although one run missed it")
	f = two.Figures["relay.sendwerk_unsigned.ratio_accepted_vs_postfix"]
	require.Equal(t, []float64{1, 2, 3}, []float64{f.Min, f.Median, f.Max})
	require.True(t, *f.MedianMeetsGoal, "2 ≥ 2")

	three := summarizeRuns([]*results{syntheticRun(0.45, 1.9, 300, 20, 10), syntheticRun(0.9, 2.1, 500, 30, 10), syntheticRun(0.2, 5, 400, 40, 20)})
	f = three.Figures["submit.c16.ratio_vs_pgbench"]
	require.Equal(t, []float64{0.2, 0.45, 0.9}, []float64{f.Min, f.Median, f.Max})
	require.False(t, *f.MedianMeetsGoal, "judged on the median 0.45, not the max 0.9 nor the mean 0.52")
	f = three.Figures["relay.sendwerk_unsigned.ratio_accepted_vs_postfix"]
	require.Equal(t, 2.1, f.Median)
	require.True(t, *f.MedianMeetsGoal, "judged on the median 2.1, not the min 1.9")
	require.Equal(t, &goal{Op: ">=", Value: 2}, f.Goal)
	f = three.Figures["relay.sendwerk_unsigned.ratio_end_to_end_vs_postfix"]
	require.Equal(t, &goal{Op: ">=", Value: 2}, f.Goal)
	require.False(t, *f.MedianMeetsGoal, "1.6 < 2")
	f = three.Figures["relay.sendwerk_dkim.ratio_end_to_end_vs_postfix"]
	require.Equal(t, &goal{Op: ">=", Value: 1.2}, f.Goal, "with DKIM the goal is 1.2")
	require.True(t, *f.MedianMeetsGoal, "1.4 ≥ 1.2")
	f = three.Figures["relay.sendwerk_unsigned.ratio_cpu_vs_postfix"]
	require.Equal(t, &goal{Op: "<=", Value: 0.7}, f.Goal)
	require.False(t, *f.MedianMeetsGoal, "0.8 > 0.7: CPU is a ceiling")
	require.Nil(t, three.Figures["relay.sendwerk_dkim.ratio_cpu_vs_postfix"].Goal, "the CPU goal is set without DKIM")
	f = three.Figures["latency.p99_ratio_sendwerk_vs_postfix"]
	require.Equal(t, &goal{Op: "<=", Value: 1}, f.Goal)
	require.Equal(t, 2.0, f.Median)
	require.False(t, *f.MedianMeetsGoal, "p99 must not exceed Postfix's")
	f = three.Figures["relay.sendwerk_unsigned.accepted_per_s"]
	require.Equal(t, []float64{300, 500, 400}, f.Values, "values stay in run order")
	require.Equal(t, []float64{300, 400, 500}, []float64{f.Min, f.Median, f.Max})
	f = three.Figures["latency.p99_ratio_sendwerk_vs_postfix"]
	require.Equal(t, []float64{2, 3, 2}, f.Values, "the p99 ratio is taken within each run")
	require.Equal(t, 2.0, f.Median)
	f = three.Figures["latency.p99_ratio_unsigned_vs_postfix"]
	require.Equal(t, []float64{1, 1.5, 1}, f.Values, "like for like: Sendwerk without DKIM against Postfix, which signs nothing")
	require.Equal(t, &goal{Op: "<=", Value: 1}, f.Goal)
	require.True(t, *f.MedianMeetsGoal, "1 ≤ 1")
	old := summarizeRuns([]*results{{Latency: &latencyRes{Sendwerk: latencySummary{P99ms: 20}, Postfix: latencySummary{P99ms: 10}}}})
	require.NotContains(t, old.Figures, "latency.p99_ratio_unsigned_vs_postfix", "a results file from before the unsigned run has no such figure")
	require.NotContains(t, old.Figures, "latency.sendwerk_unsigned.p99_ms")
	require.Equal(t, 2.0, three.Figures["cpu.relay_unsigned.server_s_per_1000"].Median, "2 CPU s over 1000 messages")
	require.Equal(t, 4.0, three.Figures["cpu.relay_unsigned.postgres_s_per_1000"].Median)
	require.Equal(t, 14.0, three.Figures["statements.per_delivery"].Median, "20 per message less 6 per accepted submit")
	require.NotContains(t, three.Figures, "cpu.relay_dkim.server_s_per_1000", "no CPU split when the run measured none")
	require.NotContains(t, three.Figures, "batch.messages_per_s", "a phase that did not run has no figures")
}

func TestSummaryFigureMissingFromSomeRuns(t *testing.T) {
	a, b := syntheticRun(0.5, 2, 300, 20, 10), syntheticRun(0.5, 2, 300, 20, 10)
	b.Batch = &batchResult{BatchSize: 500, Clients: 2, MsgsPerS: 7000}
	s := summarizeRuns([]*results{a, b})
	f := s.Figures["batch.messages_per_s"]
	require.Equal(t, []float64{7000}, f.Values, "only the runs that reported a figure count towards it")
	require.Equal(t, 7000.0, f.Median)
}

func TestSummaryJSON(t *testing.T) {
	runs := []*results{syntheticRun(0.4, 1, 300, 20, 10), syntheticRun(0.8, 3, 500, 30, 10), syntheticRun(0.6, 2, 400, 40, 20)}
	runs[0].Machine = machine{CPUs: 2, Model: "test"}
	f := newBenchFile(runs, 3, 60)
	b, err := json.Marshal(f)
	require.NoError(t, err)

	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	require.EqualValues(t, 3, doc["run_count"])
	require.EqualValues(t, 3, doc["runs_requested"])
	require.Contains(t, doc["median_convention"], "mean of the two middle values")
	require.Equal(t, "test", doc["machine"].(map[string]any)["cpu_model"])
	runsJSON := doc["runs"].([]any)
	require.Len(t, runsJSON, 3)
	relay := runsJSON[1].(map[string]any)["relay"].(map[string]any)
	require.EqualValues(t, 500, relay["sendwerk_unsigned"].(map[string]any)["accepted_per_s"], "each run keeps the single-run shape")
	fig := doc["summary"].(map[string]any)["submit.c16.ratio_vs_pgbench"].(map[string]any)
	require.InDelta(t, 0.6, fig["median"], 1e-9)
	require.EqualValues(t, 0.4, fig["min"])
	require.EqualValues(t, 0.8, fig["max"])
	require.Equal(t, map[string]any{"op": ">=", "value": 0.5}, fig["goal"])
	require.Equal(t, true, fig["median_meets_goal"])

	// The summary object keeps the table's order, and reads back.
	var back benchFile
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, f.Summary.Keys, back.Summary.Keys)
	require.Equal(t, "submit.c16.sendwerk_per_s", back.Summary.Keys[0])
	require.Less(t, slices.Index(back.Summary.Keys, "relay.postfix.accepted_per_s"), slices.Index(back.Summary.Keys, "latency.sendwerk_dkim.p99_ms"))
	require.Equal(t, f.Summary.Figures["relay.sendwerk_dkim.ratio_accepted_vs_postfix"].Median, back.Summary.Figures["relay.sendwerk_dkim.ratio_accepted_vs_postfix"].Median)
}

func TestSummaryPrint(t *testing.T) {
	s := summarizeRuns([]*results{syntheticRun(0.4, 1, 300, 20, 10), syntheticRun(0.8, 3, 500, 30, 10), syntheticRun(0.6, 1.5, 400, 40, 20)})
	var b strings.Builder
	s.print(&b, 3)
	out := b.String()
	require.Contains(t, out, "Summary of 3 runs")
	line := func(label string) []string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, label) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line %q in\n%s", label, out)
		return nil
	}
	require.Equal(t, []string{"c=16", "ratio", "Sendwerk", "/", "pgbench", "0.40", "0.60", "0.80", "67", "%", "≥", "0.5", "yes"}, line("c=16 ratio"))
	require.Equal(t, []string{"Sendwerk,", "no", "DKIM:", "accepted", "×", "Postfix", "1.00", "1.50", "3.00", "133", "%", "≥", "2", "no"}, line("no DKIM: accepted × Postfix"))
	require.Equal(t, []string{"Sendwerk,", "no", "DKIM:", "accepted", "msg/s", "300", "400", "500", "50", "%"}, line("no DKIM: accepted msg/s"))
}
