package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func later() *time.Time {
	t := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	return &t
}

// phaseSubmit: single-message submits at each concurrency, each beside pgbench running
// the statements the handler runs, against the same cluster.
func (e *env) phaseSubmit(ctx context.Context) error {
	script, err := e.writePGBenchScript(ctx)
	if err != nil {
		return err
	}
	body := e.load.body(senderDKIM, later())
	for _, c := range e.plan.Concurrencies {
		sw := closedLoop(ctx, c, seconds(e.plan.WarmupSeconds), seconds(e.plan.SubmitSeconds), func(ctx context.Context) (int, error) {
			_, err := e.load.submit(ctx, body, false)
			return 1, err
		})
		if sw.Ops == 0 {
			return fmt.Errorf("no submit succeeded at concurrency %d: %s", c, sw.FirstErr)
		}
		e.settle()
		pg, err := e.runPGBench(ctx, script, c, e.plan.SubmitSeconds)
		if err != nil {
			return err
		}
		row := submitRow{
			Concurrency: c, Errors: sw.Errors, FirstError: sw.FirstErr,
			Sendwerk: rateLatency{PerSecond: float64(sw.Units) / sw.Seconds, Count: sw.Units, latencySummary: summarize(sw.Latencies)},
			PGBench:  pg,
		}
		if pg.PerSecond > 0 {
			row.Ratio = row.Sendwerk.PerSecond / pg.PerSecond
		}
		if c == 16 {
			g := 0.5
			row.Goal = &g
		}
		if sw.Errors > 0 {
			progress("  c=%d: %d submits failed, first: %s", c, sw.Errors, sw.FirstErr)
		}
		progress("  c=%d: sendwerk %.0f msg/s (p50 %.1f ms, p99 %.1f ms), pgbench %.0f tx/s (p50 %.1f, p99 %.1f), ratio %.2f",
			c, row.Sendwerk.PerSecond, row.Sendwerk.P50ms, row.Sendwerk.P99ms, pg.PerSecond, pg.P50ms, pg.P99ms, row.Ratio)
		e.res.Submit = append(e.res.Submit, row)
		e.settle()
	}
	// Statements per accepted message: 16 clients, send_at ahead so no delivery runs.
	n := 500
	per, err := e.stats.perMessage(ctx, n, func() error {
		_, _, err := countedLoad(ctx, 16, n, func(ctx context.Context, _ int) (string, error) {
			acc, err := e.load.submit(ctx, body, false)
			return acc.MessageID, err
		})
		return err
	})
	if err != nil {
		return err
	}
	e.res.StatementsPerAccepted = per
	progress("  %.1f SQL statements per accepted message", per)
	e.settle()
	return nil
}

// phaseBatch: 500-message batches from a few clients.
func (e *env) phaseBatch(ctx context.Context) error {
	body := e.load.batchBody(senderDKIM, later(), e.plan.BatchSize)
	r := closedLoop(ctx, e.plan.BatchClients, seconds(e.plan.WarmupSeconds), seconds(e.plan.BatchSeconds), func(ctx context.Context) (int, error) {
		return e.load.submitBatch(ctx, body)
	})
	if r.Ops == 0 {
		return fmt.Errorf("no batch succeeded: %s", r.FirstErr)
	}
	e.res.Batch = &batchResult{
		BatchSize: e.plan.BatchSize, Clients: e.plan.BatchClients, MsgsPerS: float64(r.Units) / r.Seconds, Batches: r.Ops,
		BatchLatency: summarize(r.Latencies), Errors: r.Errors, FirstError: r.FirstErr,
	}
	progress("  %.0f messages/s in %d batches", e.res.Batch.MsgsPerS, r.Ops)
	e.settle()
	return nil
}

// phaseRelay: n messages of 2 KB from 20 submitters, relayed to the sink, through Postfix
// and through Sendwerk without and with DKIM.
func (e *env) phaseRelay(ctx context.Context) error {
	n := e.plan.RelayMessages
	rr := &relayResult{GoalAccepted: 2, GoalEnd: 2, GoalDKIM: 1.2, GoalCPU: 0.7}
	var err error
	if rr.Postfix, err = e.relayPostfix(ctx, n, false); err != nil {
		return err
	}
	e.settle()
	if rr.PostfixReuse, err = e.relayPostfix(ctx, n, true); err != nil {
		return err
	}
	e.settle()
	if rr.Unsigned, err = e.relaySendwerk(ctx, n, senderUnsigned, "Sendwerk, no DKIM"); err != nil {
		return err
	}
	e.settle()
	if rr.DKIM, err = e.relaySendwerk(ctx, n, senderDKIM, "Sendwerk, DKIM"); err != nil {
		return err
	}
	if rr.Unsigned.Signed != 0 || rr.DKIM.Signed != int64(n) {
		return fmt.Errorf("DKIM signatures at the sink: %d of the unsigned run, %d of %d of the DKIM run", rr.Unsigned.Signed, rr.DKIM.Signed, n)
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for _, x := range []struct {
		p                *relayRun
		acc, end, cpuPer *ratios
	}{{&rr.Postfix, &rr.RatioAccept, &rr.RatioEnd, &rr.RatioCPU}, {&rr.PostfixReuse, &rr.ReuseRatioAccept, &rr.ReuseRatioEnd, &rr.ReuseRatioCPU}} {
		*x.acc = ratios{div(rr.Unsigned.AcceptedPerS, x.p.AcceptedPerS), div(rr.DKIM.AcceptedPerS, x.p.AcceptedPerS)}
		*x.end = ratios{div(rr.Unsigned.EndToEndPerS, x.p.EndToEndPerS), div(rr.DKIM.EndToEndPerS, x.p.EndToEndPerS)}
		*x.cpuPer = ratios{div(rr.Unsigned.CPUPer1000, x.p.CPUPer1000), div(rr.DKIM.CPUPer1000, x.p.CPUPer1000)}
	}
	e.res.Relay = rr
	e.settle()
	return nil
}

// relayTimeout bounds how long the sink may take to receive everything after acceptance.
func relayTimeout(n int) time.Duration { return 2*time.Minute + time.Duration(n)*10*time.Millisecond }

// relayPostfix feeds Postfix with smtp-source: by default one SMTP connection per message
// (the issue's `-s 20 -m 20000 -l 2048`, which its ≈500/≈370 messages/s figures describe);
// with reuse, each session sends its messages over one connection (-d), as Sendwerk's
// HTTP clients keep theirs alive.
func (e *env) relayPostfix(ctx context.Context, n int, reuse bool) (relayRun, error) {
	e.sink.reset()
	args := []string{"-s", strconv.Itoa(e.plan.RelaySubmitters), "-m", strconv.Itoa(n), "-l", strconv.Itoa(e.plan.MessageBytes),
		"-f", "sender@" + postfixDomain, "-t", recipient, e.postfix.addr()}
	name := "Postfix"
	if reuse {
		args = append([]string{"-d"}, args...)
		name = "Postfix, connections reused (-d)"
	}
	run := relayRun{Name: name, Messages: n, Command: "smtp-source " + strings.Join(args, " ")}
	cpu0 := e.pfCPU.seconds()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "smtp-source", args...).CombinedOutput()
	if err != nil {
		return run, fmt.Errorf("smtp-source: %v: %s", err, out)
	}
	t1 := time.Now()
	if err := e.waitSink(ctx, n, relayTimeout(n), func() string { return fmt.Sprintf("%d still queued in Postfix", e.postfix.queued()) }); err != nil {
		return run, err
	}
	t2 := time.Now()
	e.finishRun(&run, n, t0, t1, t2, e.pfCPU.seconds()-cpu0)
	return run, nil
}

func (e *env) relaySendwerk(ctx context.Context, n int, from, name string) (relayRun, error) {
	e.sink.reset()
	body := e.load.body(from, nil)
	run := relayRun{Name: name, Messages: n}
	if e.o.perf {
		name := strings.NewReplacer(" ", "", ",", "-").Replace(name)
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-a", "-o", filepath.Join(e.dir, "perf-"+name+".data"))
		if err := perf.Start(); err != nil {
			return run, fmt.Errorf("perf: %w", err)
		}
		defer func() { _ = perf.Process.Signal(os.Interrupt); _ = perf.Wait() }()
	}
	sw0, pg0 := e.swCPU.seconds(), e.pgCPU.seconds()
	var t0, t1, t2 time.Time
	stmts, err := e.stats.perMessage(ctx, n, func() error {
		t0 = time.Now()
		var err error
		if _, t1, err = countedLoad(ctx, e.plan.RelaySubmitters, n, func(ctx context.Context, _ int) (string, error) {
			acc, err := e.load.submit(ctx, body, false)
			return acc.MessageID, err
		}); err != nil {
			return err
		}
		if err := e.waitSink(ctx, n, relayTimeout(n), func() string { return "see " + e.srv.logPath }); err != nil {
			return err
		}
		t2 = time.Now()
		run.ServerCPU, run.PostgresCPU = e.swCPU.seconds()-sw0, e.pgCPU.seconds()-pg0
		e.settle() // outcomes are recorded just after the sink's 250
		return nil
	})
	if err != nil {
		return run, err
	}
	run.StatementsPerMessage = stmts
	e.finishRun(&run, n, t0, t1, t2, run.ServerCPU+run.PostgresCPU)
	return run, nil
}

func (e *env) finishRun(run *relayRun, n int, t0, t1, t2 time.Time, cpu float64) {
	run.AcceptSeconds, run.EndSeconds = t1.Sub(t0).Seconds(), t2.Sub(t0).Seconds()
	run.AcceptedPerS, run.EndToEndPerS = float64(n)/run.AcceptSeconds, float64(n)/run.EndSeconds
	run.CPUSeconds, run.CPUPer1000 = cpu, cpu/(float64(n)/1000)
	run.Signed = e.sink.signed.Load()
	split := ""
	if run.ServerCPU+run.PostgresCPU > 0 {
		split = fmt.Sprintf(" (server %.1f s, postgres %.1f s)", run.ServerCPU, run.PostgresCPU)
	}
	if run.StatementsPerMessage > 0 {
		split += fmt.Sprintf(", %.1f SQL statements per message", run.StatementsPerMessage)
	}
	progress("  %s: accepted %.0f msg/s (%.1f s), end to end %.0f msg/s (%.1f s), %.2f CPU s / 1000 msgs%s, %d DKIM-signed",
		run.Name, run.AcceptedPerS, run.AcceptSeconds, run.EndToEndPerS, run.EndSeconds, run.CPUPer1000, split, run.Signed)
}

func (e *env) waitSink(ctx context.Context, n int, timeout time.Duration, why func() string) error {
	select {
	case <-e.sink.waitCount(int64(n)):
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("the sink got %d of %d messages within %s (%s)", e.sink.count.Load(), n, timeout, why())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// phaseLatency: submit→delivered at a steady rate, Sendwerk over REST with RSA DKIM, then
// without DKIM (like for like with Postfix, which signs nothing), then Postfix over SMTP.
func (e *env) phaseLatency(ctx context.Context) error {
	res := &latencyRes{Rate: e.plan.LatencyRate, Seconds: e.plan.LatencySeconds, Lost: map[string]int{}}
	d := seconds(e.plan.LatencySeconds)

	for _, run := range []struct {
		side, name, from string
		done, taken      *latencySummary
	}{
		{"sendwerk", "Sendwerk, DKIM", senderDKIM, &res.Sendwerk, &res.SendwerkAccept},
		{"sendwerk-unsigned", "Sendwerk, no DKIM", senderUnsigned, &res.SendwerkUnsigned, &res.SendwerkUnsignedAccept},
	} {
		e.sink.reset()
		body := e.load.body(run.from, nil)
		sw, err := openLoop(ctx, e.plan.LatencyRate, d, func(ctx context.Context, _ int) (string, error) {
			acc, err := e.load.submit(ctx, body, true)
			return acc.MessageID, err
		})
		if err != nil {
			return err
		}
		var lost int
		*run.done, *run.taken, lost = e.deliveryLatencies(ctx, run.side, sw)
		res.Lost[run.side] = lost
		progress("  %s: p50 %.1f ms, p99 %.1f ms over %d messages (202 after p50 %.1f ms, p99 %.1f ms)", run.name, run.done.P50ms, run.done.P99ms, run.done.N, run.taken.P50ms, run.taken.P99ms)
		e.settle()
	}

	e.sink.reset()
	pool, err := newSMTPPool(e.postfix.addr(), 8)
	if err != nil {
		return err
	}
	defer pool.close()
	msg := func(id string) []byte {
		return []byte("From: <sender@" + postfixDomain + ">\r\nTo: <" + recipient + ">\r\nSubject: Your report is ready\r\nMessage-ID: " + id +
			"\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\n" + strings.ReplaceAll(e.load.text, "\n", "\r\n"))
	}
	pf, err := openLoop(ctx, e.plan.LatencyRate, d, func(ctx context.Context, i int) (string, error) {
		id := fmt.Sprintf("<lat-%d-%d@bench.example>", time.Now().UnixNano(), i)
		return id, pool.send("sender@"+postfixDomain, recipient, msg(id))
	})
	if err != nil {
		return err
	}
	res.Postfix, res.PostfixAccept, res.Lost["postfix"] = e.deliveryLatencies(ctx, "postfix", pf)
	progress("  Postfix: p50 %.1f ms, p99 %.1f ms over %d messages (250 after p50 %.1f ms, p99 %.1f ms)", res.Postfix.P50ms, res.Postfix.P99ms, res.Postfix.N, res.PostfixAccept.P50ms, res.PostfixAccept.P99ms)
	for k, v := range res.Lost {
		if v == 0 {
			delete(res.Lost, k)
		}
	}
	e.res.Latency = res
	return nil
}

// deliveryLatencies waits for the handed-over messages at the sink and summarizes
// hand-over start → arrival and hand-over start → accepted; it returns how many never
// arrived. Each message's times go to <dir>/latency-<side>.tsv (kept with -keep), to see
// when in the phase the slow ones were.
func (e *env) deliveryLatencies(ctx context.Context, side string, s []sent) (latencySummary, latencySummary, int) {
	deadline := time.Now().Add(time.Minute)
	_ = e.waitSink(ctx, len(s), time.Until(deadline), func() string { return "" })
	lats := make([]time.Duration, 0, len(s))
	acc := make([]time.Duration, 0, len(s))
	lost := 0
	var tsv strings.Builder
	var first time.Time
	for _, m := range s {
		if first.IsZero() || m.at.Before(first) {
			first = m.at
		}
	}
	tsv.WriteString("start_ms\taccepted_ms\tdelivered_ms\n")
	for _, m := range s {
		acc = append(acc, m.accepted)
		at, ok := e.sink.arrival(m.messageID)
		delivered := "lost"
		if ok {
			lats = append(lats, at.Sub(m.at))
			delivered = strconv.FormatFloat(ms(at.Sub(m.at)), 'f', 3, 64)
		} else {
			lost++
		}
		fmt.Fprintf(&tsv, "%.3f\t%.3f\t%s\n", ms(m.at.Sub(first)), ms(m.accepted), delivered)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "latency-"+side+".tsv"), []byte(tsv.String()), 0o644); err != nil {
		progress("  could not write the latencies: %v", err)
	}
	return summarize(lats), summarize(acc), lost
}

// smtpPool is a few persistent SMTP client connections, as an application's mail library
// keeps them.
type smtpPool struct {
	conns chan *smtp.Client
	all   []*smtp.Client
}

func newSMTPPool(addr string, n int) (*smtpPool, error) {
	p := &smtpPool{conns: make(chan *smtp.Client, n)}
	for range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			p.close()
			return nil, err
		}
		c := smtp.NewClient(conn)
		if err := c.Hello("client.bench.example"); err != nil {
			p.close()
			return nil, err
		}
		p.all = append(p.all, c)
		p.conns <- c
	}
	return p, nil
}

func (p *smtpPool) send(from, to string, msg []byte) error {
	c := <-p.conns
	defer func() { p.conns <- c }()
	return c.SendMail(from, []string{to}, bytes.NewReader(msg))
}

func (p *smtpPool) close() {
	for _, c := range p.all {
		_ = c.Quit()
	}
}
