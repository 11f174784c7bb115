package message

import (
	"context"
	"log/slog"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// afterAttempt tells the suppression list and the connector's circuit breaker what one
// attempt found out. Both are best effort beside the attempt's own record: a failure here is
// logged, and the message's outcome stands.
func (w *DeliverWorker) afterAttempt(ctx context.Context, m dbsqlc.Message, conn *connector.Connector, sendErr error) {
	if err := w.suppressGone(ctx, m, sendErr); err != nil {
		w.log().Error("suppressing bounced recipients failed", "message", m.ID, "error", err)
	}
	tripped, err := w.connectors.ObserveAttempt(ctx, conn, sendErr)
	if err != nil {
		w.log().Error("connector circuit breaker failed", "connector", conn.ID, "error", err)
	}
	if tripped {
		w.log().Warn("connector paused by its circuit breaker", "tenant", conn.TenantID, "connector", conn.ID, "message", m.ID)
	}
}

func (w *DeliverWorker) log() *slog.Logger {
	if w.logger == nil {
		return slog.Default()
	}
	return w.logger
}

// returnPath is the envelope sender of an attempt: the VERP return path at the bounce
// domain for platform connectors (the operator's relay, whose bounces Sendwerk must take
// in), the message's own for smtp connectors (the tenant's server keeps the return path).
func (w *DeliverWorker) returnPath(conn *connector.Connector, m dbsqlc.Message) string {
	if w.cfg.ReturnPaths == nil || conn.Kind != connector.KindPlatform {
		return m.EnvelopeFrom
	}
	return w.cfg.ReturnPaths.ReturnPath(m.ID)
}
