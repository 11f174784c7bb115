package bounce

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Kinds of report.
const (
	KindDSN     = "dsn"
	KindARF     = "arf"
	KindUnknown = "unknown"
)

// Outcomes of a report.
const (
	// OutcomeRecorded: tied to a message; its timeline has the bounce or complaint.
	OutcomeRecorded = "recorded"
	// OutcomeUnparsed: not a DSN or feedback report Sendwerk can read; kept whole.
	OutcomeUnparsed = "unparsed"
	// OutcomeUnmatched: readable, but it names no message of Sendwerk's; kept whole.
	OutcomeUnmatched = "unmatched"
)

// Report is one report the listener received, as the operator sees it.
type Report struct {
	ID           string
	Kind         string
	Outcome      string
	TenantID     string
	MessageID    string
	EnvelopeFrom string
	RcptTo       string
	RemoteAddr   string
	Problem      string
	Details      map[string]any
	Raw          []byte
	SizeBytes    int
	ReceivedAt   time.Time
}

// List returns up to limit reports older than beforeID, newest first; outcome "" is all.
func (s *Service) List(ctx context.Context, outcome, beforeID string, limit int) ([]*Report, error) {
	p := dbsqlc.BounceReportListParams{BeforeID: beforeID, Max: int32(limit)}
	if outcome != "" {
		p.Outcome = &outcome
	}
	rows, err := s.q.BounceReportList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("error listing bounce reports: %w", err)
	}
	out := make([]*Report, len(rows))
	for i, r := range rows {
		rep := &Report{ID: r.ID, Kind: r.Kind, Outcome: r.Outcome, EnvelopeFrom: r.EnvelopeFrom, RcptTo: r.RcptTo,
			RemoteAddr: r.RemoteAddr, Problem: r.Problem, Raw: r.Raw, SizeBytes: int(r.SizeBytes), ReceivedAt: r.ReceivedAt}
		rep.TenantID, rep.MessageID = deref(r.TenantID), deref(r.MessageID)
		if err := json.Unmarshal(r.Details, &rep.Details); err != nil {
			return nil, fmt.Errorf("error decoding bounce report details: %w", err)
		}
		out[i] = rep
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
