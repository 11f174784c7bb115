package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// DefaultBreakerThreshold is how many attempts in a row may fail with a rejected password
// before the connector is paused: few enough that a provider such as Microsoft 365 does not
// lock the account, more than one so a single hiccup does not stop the mail.
const DefaultBreakerThreshold = 3

// Pause reasons.
const (
	PausedManual = "manual"
	// PausedAuthFailed and PausedTLSInvalid are the circuit breaker's reasons; they are
	// also the delivery codes it counts.
	PausedAuthFailed = delivery.CodeAuthFailed
	PausedTLSInvalid = delivery.CodeTLSCertificateInvalid
)

// Breaker is a connector's circuit-breaker state.
type Breaker struct {
	// PausedReason says why a paused connector is paused: PausedManual, or the delivery
	// code the breaker counted (PausedAuthFailed, PausedTLSInvalid, a settings fault such as
	// auth.requires_tls); "" for an active one.
	PausedReason string
	PausedAt     *time.Time
	// ConsecutiveFailures counts attempts in a row that failed with LastFailure's code.
	ConsecutiveFailures int
	LastFailure         *Failure
}

// Failure is the last failure the breaker counted.
type Failure struct {
	Code         string    `json:"code"`
	SMTPCode     int       `json:"smtp_code,omitempty"`
	EnhancedCode string    `json:"enhanced_code,omitempty"`
	Text         string    `json:"text"`
	At           time.Time `json:"at"`
}

// Tripped reports a connector the breaker paused.
func (b Breaker) Tripped() bool {
	return b.PausedReason != "" && b.PausedReason != PausedManual
}

func (b *Breaker) fromRow(r dbsqlc.Connector) error {
	b.PausedReason, b.PausedAt, b.ConsecutiveFailures = deref(r.PausedReason), r.PausedAt, int(r.ConsecutiveFailures)
	if len(r.LastFailure) == 0 {
		return nil
	}
	b.LastFailure = &Failure{}
	if err := json.Unmarshal(r.LastFailure, b.LastFailure); err != nil {
		return fmt.Errorf("error decoding connector failure: %w", err)
	}
	return nil
}

// counts reports the failures the breaker counts: the upstream rejected the password, its
// certificate does not verify (even on a connection pool that worked before, where delivery
// calls it temporary), or the connector's settings cannot work with this server (AUTH only
// after STARTTLS on a plaintext connector, a login the server requires but the connector
// lacks, no common AUTH mechanism, STARTTLS not offered): faults no retry can fix, so the
// connector is paused and its messages wait for the tenant instead of failing on schedule.
func counts(code string) bool {
	switch code {
	case PausedAuthFailed, PausedTLSInvalid, delivery.CodeAuthRequiresTLS, delivery.CodeAuthRequired,
		delivery.CodeAuthMechanismUnsupported, delivery.CodeStartTLSUnsupported:
		return true
	}
	return false
}

// ObserveAttempt feeds one delivery attempt of c to its circuit breaker: an attempt that got
// past the login resets the count, a counted failure adds to it, and the threshold-th one in
// a row pauses the connector (connector.paused, in the same transaction). Queued messages
// then wait until a successful connection test or a PATCH resumes it. It returns whether this
// attempt paused the connector.
func (s *Service) ObserveAttempt(ctx context.Context, c *Connector, sendErr error) (bool, error) {
	var de *delivery.Error
	o := delivery.Classify(sendErr)
	counted := sendErr != nil && counts(o.Code) // a login refused at MAIL (530) counts too
	if !counted && (sendErr == nil || (errors.As(sendErr, &de) && de.Stage != delivery.StageConnect)) {
		if c.Breaker.ConsecutiveFailures == 0 {
			return false, nil
		}
		err := s.q.ConnectorBreakerReset(ctx, dbsqlc.ConnectorBreakerResetParams{TenantID: c.TenantID, ID: c.ID})
		s.forget(c.TenantID) // else the cached count would reset again on every attempt
		if err != nil {
			return false, fmt.Errorf("error resetting connector breaker: %w", err)
		}
		return false, nil
	}
	if !counted {
		return false, nil
	}
	f := &Failure{Code: o.Code, SMTPCode: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text, At: s.NowFunc().UTC()}
	tripped := false
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		tripped, err = s.fail(ctx, tx, c, f)
		return err
	})
	s.forget(c.TenantID) // a trip must stop submissions in this process at once
	return tripped, err
}

func (s *Service) fail(ctx context.Context, tx pgx.Tx, c *Connector, f *Failure) (bool, error) {
	q := s.q.WithTx(tx)
	b, _ := json.Marshal(f)
	row, err := q.ConnectorBreakerFail(ctx, dbsqlc.ConnectorBreakerFailParams{TenantID: c.TenantID, ID: c.ID, FailureCode: &f.Code, LastFailure: b})
	if err != nil {
		return false, fmt.Errorf("error counting connector failure: %w", store.MapError(err))
	}
	if int(row.ConsecutiveFailures) < s.breakerThreshold() || row.Status != StatusActive {
		return false, nil
	}
	paused, err := q.ConnectorBreakerTrip(ctx, dbsqlc.ConnectorBreakerTripParams{TenantID: c.TenantID, ID: c.ID, PausedReason: &f.Code})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error pausing connector: %w", err)
	}
	msg := fmt.Sprintf("paused after %d delivery attempts in a row failed with %s: %s", row.ConsecutiveFailures, f.Code, f.Text)
	var reply *event.Reply
	if f.SMTPCode != 0 {
		reply = &event.Reply{Code: f.SMTPCode, EnhancedCode: f.EnhancedCode, Text: f.Text}
	}
	return true, event.Append(ctx, tx, &event.Event{TenantID: c.TenantID, ConnectorID: c.ID, Data: event.ConnectorPausedData{
		Name: paused.Name, Reason: f.Code, Message: msg, LastReply: reply,
	}})
}

func (s *Service) breakerThreshold() int {
	if s.policy.BreakerThreshold > 0 {
		return s.policy.BreakerThreshold
	}
	return DefaultBreakerThreshold
}

// resumeAfterTest resumes a connector the breaker paused once a connection test passed.
func (s *Service) resumeAfterTest(ctx context.Context, c *Connector) error {
	if !c.Breaker.Tripped() {
		return nil
	}
	defer s.forget(c.TenantID)
	return store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		row, err := s.q.WithTx(tx).ConnectorBreakerResume(ctx, dbsqlc.ConnectorBreakerResumeParams{TenantID: c.TenantID, ID: c.ID})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("error resuming connector: %w", err)
		}
		return event.Append(ctx, tx, &event.Event{TenantID: c.TenantID, ConnectorID: c.ID, Data: event.ConnectorResumedData{Name: row.Name, Reason: "test.succeeded"}})
	})
}

// recordPauseReason notes why a PATCH changed the status: a manual pause, or a resume that
// forgets the breaker's count.
func (s *Service) recordPauseReason(ctx context.Context, q *dbsqlc.Queries, row dbsqlc.Connector, before string) (dbsqlc.Connector, error) {
	if row.Status == before {
		return row, nil
	}
	var reason *string
	if row.Status == StatusPaused {
		r := PausedManual
		reason = &r
	}
	out, err := q.ConnectorSetPauseReason(ctx, dbsqlc.ConnectorSetPauseReasonParams{TenantID: row.TenantID, ID: row.ID, PausedReason: reason})
	if err != nil {
		return row, fmt.Errorf("error recording pause reason: %w", err)
	}
	return out, nil
}
