package main

// The benchmark itself is not a test (it needs root, Postfix and minutes). These check the
// parts whose mistakes would silently skew its numbers: reading statements back from
// PostgreSQL's log, turning them into the pgbench script, and what the sink records.

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseParams(t *testing.T) {
	got, err := parseParams(`parameters: $1 = 'it''s', $2 = NULL, $3 = '{"a": "b, c"}', $4 = ''`)
	require.NoError(t, err)
	require.Len(t, got, 4)
	require.Equal(t, "it's", *got[0])
	require.Nil(t, got[1])
	require.Equal(t, `{"a": "b, c"}`, *got[2])
	require.Equal(t, "", *got[3])

	none, err := parseParams("")
	require.NoError(t, err)
	require.Nil(t, none)

	_, err = parseParams(`parameters: $2 = 'x'`)
	require.Error(t, err, "parameters out of order")
}

func TestPGBenchScript(t *testing.T) {
	p := func(s string) *string { return &s }
	stmts := []loggedStatement{
		{query: "begin"},
		{query: "-- name: MessageInsert :exec\nINSERT INTO messages (id, tenant_id, subject, send_at) VALUES ($1, $2, $3, $4)",
			params: []*string{p("msg_abc"), p("ten_1"), p(""), nil}},
		{query: "-- name: JobInsertFastMany :many\nINSERT INTO river_job(args) SELECT unnest($1::jsonb[]) RETURNING river_job.id",
			params: []*string{p(`{"{\"message_id\": \"msg_abc\"}"}`)}},
		{query: "-- name: MessageSetJobIDs :exec\nUPDATE messages SET job_id = $2::bigint[] WHERE id = $1 AND n = $3",
			params: []*string{p("msg_abc"), p("{42}"), p("{42}")}},
		{query: "-- name: EventInsert :one\nINSERT INTO events (id, message_id, data) VALUES ($1, $2, $3) RETURNING sequence",
			params: []*string{p("evt_06h0abc"), p("msg_abc"), p(`{"message_id": "msg_abc"}`)}},
		{query: "commit"},
	}
	script, vars := pgbenchScript(stmts, "msg_abc", 42)
	require.Contains(t, script, "VALUES (('evt_pgb' || :client_id || 'x' || :r || 'k4'), (replace(:p4_2, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r)), "+
		"(replace(:p4_3, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r))::jsonb)",
		"an event gets a new id per transaction, and JSON naming the message stays jsonb")
	require.Contains(t, script, "\\set r random(")
	require.Contains(t, script, "VALUES ((replace(:p1_1, '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r)), :p1_2, '', NULL)")
	require.Contains(t, script, "RETURNING river_job.id\n\\gset j_\n", "the job id is read back for the next statement")
	require.Contains(t, script, "job_id = ('{' || :j_id || '}')::bigint[]")
	require.NotContains(t, script, "-- name:", "comment lines are dropped: pgbench substitutes :names inside them")
	require.True(t, strings.HasPrefix(strings.Split(script, "\n")[2], "begin;"))
	require.NotContains(t, script, "evt_06h0abc")
	require.Contains(t, vars, "p1_2=ten_1")
	require.Contains(t, vars, `p2_1={"{\"message_id\": \"@MSGID@\"}"}`)
	for _, v := range vars {
		require.NotContains(t, v, "msg_abc", "every message id is made unique per transaction")
		require.NotRegexp(t, `^[^=]+=$`, v, "pgbench -D refuses empty values")
	}
}

func TestSubmissionStatementsPicksOneTransaction(t *testing.T) {
	all := []loggedStatement{
		{pid: "1", query: "-- name: APIKeyGetBySecretHash :one\nSELECT"},
		{pid: "2", query: "begin"},
		{pid: "2", query: "-- name: JobGetAvailable :many\nSELECT"}, // River's fetch on another connection
		{pid: "1", query: "begin"},
		{pid: "1", query: "-- name: MessageInsert :exec\nINSERT"},
		{pid: "2", query: "commit"},
		{pid: "1", query: "-- name: UsageAdd :many\nINSERT"},
		{pid: "1", query: "commit"},
		{pid: "1", query: "-- name: MessageGet :one\nSELECT"}, // the delivery, after the submission
	}
	got, err := submissionStatements(all, []string{"APIKeyGetBySecretHash", "MessageInsert", "UsageAdd", "MessageGet"})
	require.NoError(t, err)
	var qs []string
	for _, s := range got {
		qs = append(qs, strings.SplitN(s.query, "\n", 2)[0])
	}
	require.Equal(t, []string{"-- name: APIKeyGetBySecretHash :one", "begin", "-- name: MessageInsert :exec", "-- name: UsageAdd :many", "commit"}, qs)
}

func TestSinkRecordsMessageIDAndSignature(t *testing.T) {
	s := &sink{arrived: map[string]time.Time{}}
	ss := &sinkSession{s: s}
	require.NoError(t, ss.Data(strings.NewReader("DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\nMessage-ID: <m1@x>\r\nSubject: s\r\n\r\nbody\r\nMessage-ID: <not-a-header@x>\r\n")))
	require.NoError(t, ss.Data(strings.NewReader("message-id:   <m2@x>\r\n\r\nbody\r\n")))
	require.EqualValues(t, 2, s.count.Load())
	require.EqualValues(t, 1, s.signed.Load())
	_, ok := s.arrival("<m1@x>")
	require.True(t, ok)
	_, ok = s.arrival("<m2@x>")
	require.True(t, ok)
	_, ok = s.arrival("<not-a-header@x>")
	require.False(t, ok)
	select {
	case <-s.waitCount(2):
	default:
		t.Fatal("waitCount(2) should be closed after two messages")
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(d, 0.50))
	require.Equal(t, 99*time.Millisecond, percentile(d, 0.99))
	require.Equal(t, time.Duration(0), percentile(nil, 0.5))
	s := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	require.Equal(t, 2.0, s.P50ms)
	require.Equal(t, 3.0, s.Maxms)
}
