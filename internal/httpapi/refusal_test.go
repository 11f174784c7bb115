package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/message"
)

// TestRefusalProblem: each typed refusal of message becomes its problem by type.
func TestRefusalProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
		field  string
	}{
		{&message.SenderRefusedError{Field: "from.email", Address: "ceo@other.example", Reason: "no"}, 422, "from.email"},
		{&message.TooLargeError{Field: "attachments", Size: 20, Limit: 10}, 422, "attachments"},
		{&message.TooManyRecipientsError{Field: "to", Count: 51, Limit: 50}, 422, "to"},
		{&message.ConnectorNotFoundError{ID: "con_x"}, 422, "connector_id"},
		{&message.ConnectorPausedError{ConnectorID: "con_x"}, 409, ""},
		{&message.IdempotencyConflictError{Key: "k"}, 409, ""},
		{&message.LimitError{Scope: "tenant", Period: "month", Quota: message.Quota{Limit: 1, Reset: time.Now().Add(time.Hour)}}, 429, ""},
	} {
		p := refusalProblem(fmt.Errorf("wrapped: %w", tc.err))
		require.NotNil(t, p, "%T", tc.err)
		require.Equal(t, tc.status, p.Status, "%T", tc.err)
		if tc.field != "" {
			require.Equal(t, tc.field, (*p.Errors)[0].Field)
		}
		if tc.status == 429 {
			require.NotEmpty(t, p.header.Get("Retry-After"))
		}
	}
	require.Nil(t, refusalProblem(fmt.Errorf("boom")))
}
