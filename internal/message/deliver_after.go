package message

import (
	"context"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// afterAttempt tells the suppression list and the connector's circuit breaker what one
// attempt found out. Both are best effort beside the attempt's own record: a failure here is
// logged, and the message's outcome stands.
func (w *DeliverWorker) afterAttempt(ctx context.Context, m dbsqlc.Message, conn *connector.Connector, sendErr error) {
	if err := w.suppressGone(ctx, m, sendErr); err != nil && w.logger != nil {
		w.logger.Error("suppressing bounced recipients failed", "message", m.ID, "error", err)
	}
}
