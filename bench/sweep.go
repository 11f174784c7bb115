package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// sweep restarts the server once per value of one setting (same database, same tenant)
// and measures what tuning cares about: single-message submits at concurrency 16, and the
// relay runs without and with DKIM. It is for choosing defaults, not for the README table.
func (e *env) sweep(ctx context.Context, spec string) error {
	name, list, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("-sweep wants SENDWERK_NAME=v1,v2,…, got %q", spec)
	}
	type row struct {
		value            string
		submit, p99      float64
		accU, endU, cpuU float64
		accD, endD, cpuD float64
	}
	var rows []row
	body := e.load.body(senderDKIM, later())
	for _, v := range strings.Split(list, ",") {
		env := map[string]string{}
		for k, val := range e.srv.env {
			env[k] = val
		}
		env[name] = v
		e.srv.stop()
		srv, err := startServer(e.o.bin, e.dir, env, e.swCPU)
		if err != nil {
			return err
		}
		e.srv = srv
		e.load = newSubmitter(srv.baseURL, e.tenant.key, e.plan.MessageBytes)
		progress("sweep %s=%s", name, v)
		sw := closedLoop(ctx, 16, seconds(e.plan.WarmupSeconds), seconds(e.plan.SubmitSeconds), func(ctx context.Context) (int, error) {
			_, err := e.load.submit(ctx, body, false)
			return 1, err
		})
		lat := summarize(sw.Latencies)
		e.settle()
		u, err := e.relaySendwerk(ctx, e.plan.RelayMessages, senderUnsigned, "Sendwerk, no DKIM")
		if err != nil {
			return err
		}
		e.settle()
		d, err := e.relaySendwerk(ctx, e.plan.RelayMessages, senderDKIM, "Sendwerk, DKIM")
		if err != nil {
			return err
		}
		e.settle()
		rows = append(rows, row{v, float64(sw.Units) / sw.Seconds, lat.P99ms, u.AcceptedPerS, u.EndToEndPerS, u.CPUPer1000, d.AcceptedPerS, d.EndToEndPerS, d.CPUPer1000})
	}
	fmt.Printf("\nsweep of %s (%d relay messages, %s, load %s)\n", name, e.plan.RelayMessages, time.Now().Format(time.RFC3339), firstLine("/proc/loadavg"))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "value\tsubmit c=16/s\tp99 ms\tno DKIM acc/s\tend/s\tCPU/1000\tDKIM acc/s\tend/s\tCPU/1000\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\t\n", r.value, r.submit, r.p99, r.accU, r.endU, r.cpuU, r.accD, r.endD, r.cpuD)
	}
	return tw.Flush()
}
