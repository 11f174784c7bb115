package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/sendwerk/sendwerk/internal/delivery"
)

// dkimResult is the CPU cost of DKIM-signing one message, per key type, measured in
// process as the process's CPU time (user + system, getrusage) over a loop on one
// goroutine: unlike wall time, it does not grow when other work shares the machine.
type dkimResult struct {
	MessageBytes int       `json:"message_bytes"`
	Rows         []dkimRow `json:"rows"`
}

type dkimRow struct {
	Name           string  `json:"name"`
	MicrosPerMsg   float64 `json:"us_per_message"`
	PerCoreSecond  float64 `json:"messages_per_core_second"`
	WallMicros     float64 `json:"wall_us_per_message"`
	AllocsPerMsg   int64   `json:"allocs_per_message"`
	RelativeToRSA  float64 `json:"relative_to_rsa"`
	SignaturesEach int     `json:"signatures"`
}

// phaseDKIM signs the benchmark's message with RSA-2048, with Ed25519, and with both (a
// domain with Ed25519 enabled): the signing cost every delivery pays. It needs none of the
// environment, so `-phases dkim` runs it alone.
func (e *env) phaseDKIM(ctx context.Context) error {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	msg := dkimBenchMessage(e.plan.MessageBytes)
	rsaOpt := delivery.DKIMOptions{Domain: "bench.example", Selector: "sw1", Signer: rsaKey}
	edOpt := delivery.DKIMOptions{Domain: "bench.example", Selector: "sw1ed", Signer: edKey}
	res := &dkimResult{MessageBytes: len(msg)}
	for _, c := range []struct {
		name string
		opts []delivery.DKIMOptions
	}{
		{"RSA-2048 (rsa-sha256)", []delivery.DKIMOptions{rsaOpt}},
		{"Ed25519 (ed25519-sha256)", []delivery.DKIMOptions{edOpt}},
		{"both (a domain with Ed25519 on)", []delivery.DKIMOptions{rsaOpt, edOpt}},
	} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := delivery.SignDKIM(msg, c.opts...); err != nil {
			return err
		}
		sign := func() { _, _ = delivery.SignDKIM(msg, c.opts...) }
		cpu, wall := measureCPU(sign, seconds(e.dkimSeconds()))
		row := dkimRow{Name: c.name, SignaturesEach: len(c.opts), MicrosPerMsg: cpu.Seconds() * 1e6, WallMicros: wall.Seconds() * 1e6,
			AllocsPerMsg: int64(testing.AllocsPerRun(20, sign))}
		if row.MicrosPerMsg > 0 {
			row.PerCoreSecond = 1e6 / row.MicrosPerMsg
		}
		res.Rows = append(res.Rows, row)
		progress("dkim: %s %.0f µs/message", c.name, row.MicrosPerMsg)
	}
	for i := range res.Rows {
		res.Rows[i].RelativeToRSA = res.Rows[i].MicrosPerMsg / res.Rows[0].MicrosPerMsg
	}
	e.res.DKIM = res
	return nil
}

// dkimSeconds is the CPU time spent on each key type.
func (e *env) dkimSeconds() float64 {
	if e.plan.Quick {
		return 0.5
	}
	return 3
}

// measureCPU runs f until it has used budget of process CPU time (at least 20 times) and
// returns the CPU time and the wall time per call.
func measureCPU(f func(), budget time.Duration) (cpu, wall time.Duration) {
	f() // warm up
	startCPU, startWall := processCPU(), time.Now()
	n := 0
	for n < 20 || processCPU()-startCPU < budget {
		f()
		n++
	}
	return (processCPU() - startCPU) / time.Duration(n), time.Since(startWall) / time.Duration(n)
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dkimBenchMessage is a transactional message of about size bytes with the headers
// Sendwerk renders, List-Unsubscribe included (all signed, some over-signed).
func dkimBenchMessage(size int) []byte {
	head := "From: Shop <noreply@bench.example>\r\nTo: customer@bench-rcpt.example\r\nSubject: Your order 1234\r\n" +
		"Date: Mon, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <bench-1@bench.example>\r\nMIME-Version: 1.0\r\n" +
		"List-Unsubscribe: <https://bench.example/u/1>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	line := "Thank you for your order. It ships tomorrow; track it in your account.\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

func (d *dkimResult) print(w io.Writer) {
	fmt.Fprintf(w, "6. DKIM signing cost per message (%d bytes, CPU time of the signing loop)\n", d.MessageBytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tCPU µs / message\tmessages / core-second\t× RSA\twall µs\tallocs\t")
	for _, r := range d.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.3f\t%.0f\t%d\t\n", r.Name, r.MicrosPerMsg, r.PerCoreSecond, r.RelativeToRSA, r.WallMicros, r.AllocsPerMsg)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}
