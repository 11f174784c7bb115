package message

import (
	"context"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// afterSend tells the suppression list and the connector's circuit breaker what one send
// found out. Both are best effort beside the attempt's own record: a failure here is
// logged, and the message's outcome stands.
func (d *Deliverer) afterSend(ctx context.Context, m dbsqlc.Message, conn *connector.Connector, sendErr error) {
	if err := d.suppressGone(ctx, m, sendErr); err != nil {
		d.logger.Error("suppressing bounced recipients failed", "message_id", m.ID, "error", err)
	}
	tripped, err := d.connectors.ObserveAttempt(ctx, conn, sendErr)
	if err != nil {
		d.logger.Error("connector circuit breaker failed", "connector_id", conn.ID, "error", err)
	}
	if tripped {
		d.logger.Warn("connector paused by its circuit breaker", "tenant_id", conn.TenantID, "connector_id", conn.ID, "message_id", m.ID)
	}
}

// returnPath is the envelope sender of an attempt: the VERP return path at the bounce
// domain for platform connectors (the operator's relay, whose bounces Sendwerk must take
// in), the message's own for smtp connectors (the tenant's server keeps the return path).
func (d *Deliverer) returnPath(conn *connector.Connector, m dbsqlc.Message) string {
	if d.opts.ReturnPaths == nil || conn.Kind != connector.KindPlatform {
		return m.EnvelopeFrom
	}
	return d.opts.ReturnPaths.ReturnPath(m.ID)
}
