package connector

import (
	"context"

	"github.com/sendwerk/sendwerk/internal/event"
)

// appendStatusEvent appends connector.paused or connector.resumed when c's status differs
// from before, in the transaction that changed it. reason is a code ("manual" for the API,
// "auth.failed" for the circuit breaker, …) and message says it for people.
func appendStatusEvent(ctx context.Context, db event.DB, c *Connector, before, reason, message string) error {
	if c.Status == before {
		return nil
	}
	var d event.Data = event.ConnectorResumedData{Name: c.Name, Reason: reason}
	if c.Status == StatusPaused {
		d = event.ConnectorPausedData{Name: c.Name, Reason: reason, Message: message}
	}
	return event.Append(ctx, db, &event.Event{TenantID: c.TenantID, ConnectorID: c.ID, Data: d})
}

// appendTestFailed appends connector.test_failed for a failed test of a stored connector.
func appendTestFailed(ctx context.Context, db event.DB, c *Connector, res *TestResult) error {
	if res.OK {
		return nil
	}
	return event.Append(ctx, db, &event.Event{TenantID: c.TenantID, ConnectorID: c.ID, Data: event.ConnectorTestFailedData{
		Name: c.Name, Code: res.Code, Message: res.Message, Host: res.Host, Port: res.Port,
	}})
}
