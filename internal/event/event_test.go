package event_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func queued(tenantID, msgID string) *event.Event {
	return &event.Event{TenantID: tenantID, MessageID: msgID, ConnectorID: "con_x", Data: event.MessageQueuedData{
		MessageInfo: event.MessageInfo{From: "a@example.com", Recipients: []string{"b@example.org"}, Tags: []string{"t"}, Metadata: map[string]string{"k": "v"}},
		Source:      "api", SizeBytes: 10,
	}}
}

func TestAppendAndList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RollbackLeavesNoEvent", func(t *testing.T) {
		t.Parallel()
		pool := dbtest.NewPool(t)
		ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
		require.NoError(t, err)
		boom := errors.New("state change failed")
		err = store.WithTx(ctx, pool, func(tx pgx.Tx) error {
			require.NoError(t, event.Append(ctx, tx, queued(ten.ID, ids.New(ids.Message))))
			return boom
		})
		require.ErrorIs(t, err, boom)
		page, err := event.List(ctx, pool, ten.ID, event.Filter{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, page.Events)
	})

	t.Run("CursorPagesAndFilters", func(t *testing.T) {
		t.Parallel()
		pool := dbtest.NewPool(t)
		ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
		require.NoError(t, err)
		other, err := tenant.NewService(pool).Create(ctx, "Other", nil)
		require.NoError(t, err)
		msg := ids.New(ids.Message)
		for range 3 {
			require.NoError(t, event.Append(ctx, pool, queued(ten.ID, msg)))
		}
		dom := ids.New(ids.Domain)
		require.NoError(t, event.Append(ctx, pool, &event.Event{TenantID: ten.ID, DomainID: dom,
			Data: event.DomainChangeData(event.DomainChange{Domain: "example.com", FromStatus: "at_risk", ToStatus: "verified"})}))
		require.NoError(t, event.Append(ctx, pool, queued(other.ID, ids.New(ids.Message))))

		p1, err := event.List(ctx, pool, ten.ID, event.Filter{Limit: 2})
		require.NoError(t, err)
		require.Len(t, p1.Events, 2)
		require.Less(t, p1.Events[0].Sequence, p1.Events[1].Sequence)
		p2, err := event.List(ctx, pool, ten.ID, event.Filter{After: p1.Cursor, Limit: 10})
		require.NoError(t, err)
		require.Len(t, p2.Events, 2, "the other tenant's event is not listed")
		require.Equal(t, event.DomainRestored, p2.Events[1].Type())
		p3, err := event.List(ctx, pool, ten.ID, event.Filter{After: p2.Cursor, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, p3.Events)
		require.Equal(t, p2.Cursor, p3.Cursor, "an empty page keeps the cursor")

		byType, err := event.List(ctx, pool, ten.ID, event.Filter{Types: []event.Type{event.DomainRestored}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, byType.Events, 1)
		require.Equal(t, "example.com", byType.Events[0].Data.(*event.DomainRestoredData).Domain)
		byRes, err := event.List(ctx, pool, ten.ID, event.Filter{ResourceID: msg, Limit: 10})
		require.NoError(t, err)
		require.Len(t, byRes.Events, 3)
		future := time.Now().Add(time.Hour)
		byTime, err := event.List(ctx, pool, ten.ID, event.Filter{CreatedAfter: &future, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, byTime.Events)
	})

	t.Run("LateCommitIsNotSkipped", func(t *testing.T) {
		t.Parallel()
		pool := dbtest.NewPool(t)
		ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
		require.NoError(t, err)
		// A transaction appends first but commits last: a reader meanwhile must not move
		// its cursor past the later-committed event's position.
		slow, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = slow.Rollback(ctx) }()
		require.NoError(t, event.Append(ctx, slow, queued(ten.ID, ids.New(ids.Message))))
		require.NoError(t, event.Append(ctx, pool, queued(ten.ID, ids.New(ids.Message))))

		p1, err := event.List(ctx, pool, ten.ID, event.Filter{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, p1.Events, "nothing is listed while an older transaction runs")
		require.NoError(t, slow.Commit(ctx))
		p2, err := event.List(ctx, pool, ten.ID, event.Filter{After: p1.Cursor, Limit: 10})
		require.NoError(t, err)
		require.Len(t, p2.Events, 2)
	})

	t.Run("RefusesBadInput", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		var ve *validate.Error
		_, err := event.List(ctx, tx, "ten_x", event.Filter{After: "!!", Limit: 1})
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "cursor", ve.Fields[0].Field)
		_, err = event.List(ctx, tx, "ten_x", event.Filter{Types: []event.Type{"message.nope"}, Limit: 1})
		require.ErrorAs(t, err, &ve)
		_, err = event.List(ctx, tx, "ten_x", event.Filter{ResourceID: "ten_01", Limit: 1})
		require.ErrorAs(t, err, &ve)
		require.Error(t, event.Append(ctx, tx, &event.Event{TenantID: "ten_x"}))
	})

	t.Run("AppendForAllTenants", func(t *testing.T) {
		t.Parallel()
		pool := dbtest.NewPool(t)
		a, err := tenant.NewService(pool).Create(ctx, "A", nil)
		require.NoError(t, err)
		b, err := tenant.NewService(pool).Create(ctx, "B", nil)
		require.NoError(t, err)
		n, err := event.AppendForAllTenants(ctx, pool, event.PlatformChangedData{Changed: []string{"spf_include"}}, time.Now())
		require.NoError(t, err)
		require.Equal(t, 2, n)
		for _, id := range []string{a.ID, b.ID} {
			p, err := event.List(ctx, pool, id, event.Filter{Limit: 10})
			require.NoError(t, err)
			require.Len(t, p.Events, 1)
			require.True(t, ids.Valid(ids.Event, p.Events[0].ID))
		}
	})
}

func TestWireFormat(t *testing.T) {
	t.Parallel()
	e := queued("ten_x", "msg_y")
	e.ID, e.Sequence, e.CreatedAt = "evt_z", 7, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"evt_z","type":"message.queued","created_at":"2026-01-02T03:04:05Z","sequence":7,
		"message_id":"msg_y","connector_id":"con_x","data":{"from":"a@example.com","recipients":["b@example.org"],
		"message_id_header":"","tags":["t"],"metadata":{"k":"v"},"source":"api","size_bytes":10,"send_at":null}}`, string(b))
	var back event.Event
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, event.MessageQueued, back.Type())
	require.Equal(t, "api", back.Data.(*event.MessageQueuedData).Source)
}

func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	old := queued(ten.ID, ids.New(ids.Message))
	old.ID = ids.Floor(ids.Event, time.Now().Add(-31*24*time.Hour)) // appended 31 days ago
	require.NoError(t, event.Append(ctx, pool, old))
	require.NoError(t, event.Append(ctx, pool, queued(ten.ID, ids.New(ids.Message))))
	n, err := event.DeleteExpired(ctx, pool, time.Now().Add(-event.DefaultRetention), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	p, err := event.List(ctx, pool, ten.ID, event.Filter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, p.Events, 1)
	require.NotEqual(t, old.ID, p.Events[0].ID)
}
