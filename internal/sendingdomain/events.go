package sendingdomain

import (
	"context"
	"time"

	"github.com/sendwerk/sendwerk/internal/event"
)

// appendStatusEvent appends the tenant stream's domain event for a status change
// (domain.verified, at_risk, revoked or restored), in the transaction of the change.
// Changes the stream does not report (back to pending) append nothing.
func appendStatusEvent(ctx context.Context, db event.DB, d *Domain, from, to, code, reason, checkID string, at time.Time) error {
	data := event.DomainChangeData(event.DomainChange{Domain: d.Name, FromStatus: from, ToStatus: to, Code: code, Reason: reason, CheckID: checkID})
	if data == nil {
		return nil
	}
	return event.Append(ctx, db, &event.Event{TenantID: d.TenantID, DomainID: d.ID, Data: data, CreatedAt: at})
}
