package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// sendSlow submits n messages and waits until every one is being sent (the upstream is
// slow, so they stay in flight).
func sendSlow(t *testing.T, s *sendBundle, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		r := s.send(t, simpleMessage(fmt.Sprintf("u%d@customer.example", i)))
		require.Equal(t, 202, r.StatusCode(), string(r.Body))
		ids[i] = r.JSON202.Id
	}
	for _, id := range ids {
		s.waitStatus(t, id, "sending", 10*time.Second)
	}
	return ids
}

// dbState reads a message's status and attempt outcomes straight from the database (the
// server may be stopped).
func dbState(t *testing.T, s *sendBundle, id string) (string, []string) {
	t.Helper()
	ctx := context.Background()
	var status string
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT status FROM messages WHERE id = $1", id).Scan(&status))
	rows, err := s.pool.Query(ctx, "SELECT data FROM message_events WHERE message_id = $1 AND type = 'attempt' ORDER BY id", id)
	require.NoError(t, err)
	defer rows.Close()
	var outcomes []string
	for rows.Next() {
		var data []byte
		require.NoError(t, rows.Scan(&data))
		var a struct {
			Outcome string `json:"outcome"`
		}
		require.NoError(t, json.Unmarshal(data, &a))
		outcomes = append(outcomes, a.Outcome)
	}
	return status, outcomes
}

// countDelivered counts the upstream's copies of each message.
func countDelivered(s *sendBundle, ids []string) map[string]int {
	n := map[string]int{}
	for _, m := range s.up.Messages() {
		for _, id := range ids {
			if bytes.Contains(m.Data, []byte("Message-ID: <"+id+"@")) {
				n[id]++
			}
		}
	}
	return n
}

// TestGracefulStop: a stop (SIGTERM) lets deliveries in flight finish within the shutdown
// timeout: each is delivered exactly once and recorded. Before, River was started with
// the signal's context, so a stop cancelled them at once and all were sent again later.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	s := setupSend(t, map[string]string{"SENDWERK_SHUTDOWN_TIMEOUT": "20s"}, smtptest.Opts{Delay: 700 * time.Millisecond}, nil)
	ids := sendSlow(t, s, 4)
	start := time.Now()
	require.NoError(t, s.stop())
	require.Greater(t, time.Since(start), 300*time.Millisecond, "the stop waited for the deliveries")
	got := countDelivered(s, ids)
	for _, id := range ids {
		status, outcomes := dbState(t, s, id)
		require.Equal(t, "delivered", status, id)
		require.Equal(t, []string{"delivered"}, outcomes, id)
		require.Equal(t, 1, got[id], "delivered exactly once: %s", id)
	}
}

// TestStopTimeoutCancels: deliveries still running at the shutdown timeout are cancelled,
// recorded as attempts with outcome unknown (the upstream may have the message), and
// delivered by the next process — the timeline shows the possible duplicate.
func TestStopTimeoutCancels(t *testing.T) {
	t.Parallel()
	s := setupSend(t, map[string]string{"SENDWERK_SHUTDOWN_TIMEOUT": "1s"}, smtptest.Opts{Delay: 2 * time.Second}, nil)
	ids := sendSlow(t, s, 2)
	start := time.Now()
	require.NoError(t, s.stop())
	require.Less(t, time.Since(start), 8*time.Second, "the stop did not wait beyond its timeout and the hard-stop grace")
	for _, id := range ids {
		status, outcomes := dbState(t, s, id)
		require.Equal(t, "deferred", status, id)
		require.Equal(t, []string{"unknown"}, outcomes, id)
	}
	next := setup(t, map[string]string{"DATABASE_URL": s.dbURL, "SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s"})
	_ = next
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			status, outcomes := dbState(t, s, id)
			if status == "delivered" {
				require.Equal(t, []string{"unknown", "delivered"}, outcomes, id)
				break
			}
			require.True(t, time.Now().Before(deadline), "message %s still %s", id, status)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRescueAfterCrash: a process died in the middle of an attempt (its job `running`, the
// message `sending`). Another process retries it within the rescue time — River's default
// was an hour — and the lost attempt shows as unknown before the delivery.
func TestRescueAfterCrash(t *testing.T) {
	t.Parallel()
	s := setupSend(t, nil, smtptest.Opts{}, nil)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := s.do(t, "POST", "/v1/messages", s.key, "application/json",
		`{"from":"noreply@acme.example","to":["jane@customer.example"],"subject":"Hi","text":"Hello","send_at":"`+later+`"}`)
	require.Equal(t, 202, r.status, string(r.body))
	var acc struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(r.body, &acc))
	require.NoError(t, s.stop())
	// What a kill -9 in the middle of the attempt leaves behind.
	ctx := context.Background()
	_, err := s.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '5 minutes',
		attempted_by = '{dead-process}', scheduled_at = now() - interval '5 minutes' WHERE id = (SELECT job_id FROM messages WHERE id = $1)`, acc.ID)
	require.NoError(t, err)
	_, err = s.pool.Exec(ctx, "UPDATE messages SET status = 'sending', attempts = 1, send_at = NULL WHERE id = $1", acc.ID)
	require.NoError(t, err)

	setup(t, map[string]string{"DATABASE_URL": s.dbURL, "SENDWERK_DELIVERY_RETRY_SCHEDULE": "1s,1s",
		"SENDWERK_DELIVERY_ATTEMPT_TIMEOUT": "2s", "SENDWERK_JOB_RESCUE_AFTER": "20s"})
	deadline := time.Now().Add(45 * time.Second)
	for {
		status, outcomes := dbState(t, s, acc.ID)
		if status == "delivered" {
			require.Equal(t, []string{"unknown", "delivered"}, outcomes)
			break
		}
		require.True(t, time.Now().Before(deadline), "message still %s: not rescued", status)
		time.Sleep(200 * time.Millisecond)
	}
	require.Len(t, s.up.Messages(), 1)
}
