package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// result is one scenario's row of the table.
type result struct {
	name                   string
	submitted, accepted    int
	refused                int
	internal               int // answers 500: never acceptable, even mid-fault
	rows                   int // message rows in the database
	delivered, lost, stuck int
	failed                 int
	duplicates, visible    int
	settle                 time.Duration
	noDuplicates           bool
}

// count compares what was accepted, what the database says and what the sink received.
func (r *result) count(ctx context.Context, pool *pgxpool.Pool, s *sink, ids []string) error {
	states, err := readStates(ctx, pool)
	if err != nil {
		return err
	}
	r.rows = len(states)
	for _, id := range ids {
		st := states[id]
		copies := s.copies(id)
		switch {
		case st.status != "delivered" && st.status != "failed" && st.status != "cancelled":
			r.stuck++
		case st.status == "failed":
			r.failed++
		}
		if copies == 0 {
			r.lost++
			continue
		}
		r.delivered++
		if copies > 1 {
			r.duplicates++
			if st.unknown >= copies-1 {
				r.visible++
			}
		}
	}
	return nil
}

// ok is the scenario's verdict.
func (r result) ok() bool {
	return r.lost == 0 && r.stuck == 0 && r.duplicates == r.visible && r.refused == 0 && r.internal == 0 &&
		r.rows == r.accepted && (!r.noDuplicates || r.duplicates == 0)
}

func (r result) why() string {
	var out []string
	if r.lost > 0 {
		out = append(out, "lost")
	}
	if r.stuck > 0 {
		out = append(out, "stuck")
	}
	if r.duplicates != r.visible {
		out = append(out, "invisible duplicate")
	}
	if r.noDuplicates && r.duplicates > 0 {
		out = append(out, "duplicate after a graceful stop")
	}
	if r.internal > 0 {
		out = append(out, "HTTP 500")
	}
	if r.refused > 0 {
		out = append(out, "not accepted")
	}
	if r.rows != r.accepted {
		out = append(out, "rows ≠ accepted")
	}
	if len(out) == 0 {
		return "ok"
	}
	return "FAIL: " + strings.Join(out, ", ")
}

func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tsubmitted\taccepted\t500s\trows\tdelivered\tlost\tduplicates (visible)\tstuck\tfailed\tsettle\tverdict")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d (%d)\t%d\t%d\t%s\t%s\n", r.name, r.submitted, r.accepted, r.internal, r.rows,
			r.delivered, r.lost, r.duplicates, r.visible, r.stuck, r.failed, r.settle.Round(100*time.Millisecond), r.why())
	}
	_ = tw.Flush()
}
