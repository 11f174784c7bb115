-- name: MessageInsert :exec
INSERT INTO messages (
    id, tenant_id, connector_id, source, status, from_email, from_name, envelope_from,
    recipients, to_addrs, cc_addrs, subject, message_id, tags, metadata, mime, size_bytes, send_at, job_id
) VALUES (
    @id, @tenant_id, @connector_id, @source, @status, @from_email, @from_name, @envelope_from,
    @recipients, @to_addrs, @cc_addrs, @subject, @message_id, @tags, @metadata, @mime, @size_bytes, @send_at, @job_id
);

-- name: MessageInsertMany :copyfrom
INSERT INTO messages (
    id, tenant_id, connector_id, source, status, from_email, from_name, envelope_from,
    recipients, to_addrs, cc_addrs, subject, message_id, tags, metadata, mime, size_bytes, send_at, job_id
) VALUES (
    @id, @tenant_id, @connector_id, @source, @status, @from_email, @from_name, @envelope_from,
    @recipients, @to_addrs, @cc_addrs, @subject, @message_id, @tags, @metadata, @mime, @size_bytes, @send_at, @job_id
);

-- name: MessageGet :one
SELECT * FROM messages WHERE tenant_id = @tenant_id AND id = @id;

-- MessageClaimAttempts claims messages for delivery attempts in one statement, committed
-- before any message is handed over (DATA): for each it counts the attempt and marks the message `sending`. A
-- message found still `sending` had an attempt whose outcome was never recorded; that
-- attempt is added to the timeline as unknown in the same statement. A message missing from
-- the result cannot be attempted now: it is gone or final, or its connector is paused (the
-- caller reads which). Rows are locked in id order; each lock waits for a concurrent claim or
-- outcome of the same message to commit. The ids must be distinct.
-- name: MessageClaimAttempts :many
WITH prev AS (
    SELECT m.tenant_id, m.id, m.status, m.attempts FROM messages m
    WHERE (m.tenant_id, m.id) IN (SELECT unnest(@tenant_ids::text[]), unnest(@ids::text[]))
      AND m.status IN ('queued', 'deferred', 'sending')
      AND NOT EXISTS (SELECT 1 FROM connectors c WHERE c.id = m.connector_id AND c.status = 'paused')
    ORDER BY m.id
    FOR UPDATE OF m
), unknown AS (
    INSERT INTO message_events (message_id, tenant_id, type, data)
    SELECT prev.id, prev.tenant_id, 'attempt', jsonb_build_object('attempt', prev.attempts, 'outcome', 'unknown', 'error', @unknown_text::text)
    FROM prev WHERE prev.status = 'sending'
)
UPDATE messages SET status = 'sending', attempts = messages.attempts + 1, updated_at = now()
FROM prev WHERE messages.tenant_id = prev.tenant_id AND messages.id = prev.id
RETURNING messages.*;

-- MessageClaimAttempt is MessageClaimAttempts for one message, for a claim that has no
-- company: its scalar parameters let PostgreSQL keep one generic plan.
-- name: MessageClaimAttempt :one
WITH prev AS (
    SELECT m.tenant_id, m.id, m.status, m.attempts FROM messages m
    WHERE m.tenant_id = @tenant_id AND m.id = @id AND m.status IN ('queued', 'deferred', 'sending')
      AND NOT EXISTS (SELECT 1 FROM connectors c WHERE c.id = m.connector_id AND c.status = 'paused')
    FOR UPDATE OF m
), unknown AS (
    INSERT INTO message_events (message_id, tenant_id, type, data)
    SELECT prev.id, prev.tenant_id, 'attempt', jsonb_build_object('attempt', prev.attempts, 'outcome', 'unknown', 'error', @unknown_text::text)
    FROM prev WHERE prev.status = 'sending'
)
UPDATE messages SET status = 'sending', attempts = messages.attempts + 1, updated_at = now()
FROM prev WHERE messages.tenant_id = prev.tenant_id AND messages.id = prev.id
RETURNING messages.*;

-- MessageRecordOutcomes records the outcomes of a group of attempts in one statement: each
-- message's new status, its timeline rows (attempt, then outcome) and its stream event. An
-- outcome is written only while its claim is still the message's current one (`sending`
-- with the attempt's number): after a COMMIT whose answer was lost the retry finds the
-- outcome already there, and after a rescue a newer attempt owns the message. It returns
-- the ids of the messages it recorded. next_attempt_at is kept for deferred outcomes only.
-- name: MessageRecordOutcomes :many
WITH o AS (
    SELECT unnest(@tenant_ids::text[]) AS tenant_id, unnest(@ids::text[]) AS id, unnest(@attempts::int[]) AS attempts,
        unnest(@statuses::text[]) AS status, unnest(@last_replies::text[]) AS last_reply,
        unnest(@status_reasons::text[]) AS status_reason, unnest(@next_attempt_ats::timestamptz[]) AS next_attempt_at
), done AS (
    UPDATE messages m SET
        status = o.status, last_reply = o.last_reply::jsonb, status_reason = o.status_reason,
        next_attempt_at = CASE WHEN o.status = 'deferred' THEN o.next_attempt_at END, updated_at = now(),
        completed_at = CASE WHEN o.status IN ('delivered', 'failed', 'cancelled') THEN now() END
    FROM o
    WHERE m.tenant_id = o.tenant_id AND m.id = o.id AND m.status = 'sending' AND m.attempts = o.attempts
    RETURNING m.id
), timeline AS (
    INSERT INTO message_events (message_id, tenant_id, type, data)
    SELECT t.message_id, t.tenant_id, t.type, t.data::jsonb
    FROM (SELECT unnest(@timeline_message_ids::text[]) AS message_id, unnest(@timeline_tenant_ids::text[]) AS tenant_id,
        unnest(@timeline_types::text[]) AS type, unnest(@timeline_data::text[]) AS data,
        generate_series(1, cardinality(@timeline_message_ids::text[])) AS n) t
    WHERE t.message_id IN (SELECT done.id FROM done)
    ORDER BY t.n
), stream AS (
    INSERT INTO events (id, tenant_id, type, created_at, message_id, connector_id, data)
    SELECT s.id, s.tenant_id, s.type, s.created_at, s.message_id, s.connector_id, s.data::jsonb
    FROM (SELECT unnest(@event_ids::text[]) AS id, unnest(@event_tenant_ids::text[]) AS tenant_id,
        unnest(@event_types::text[]) AS type, unnest(@event_created_ats::timestamptz[]) AS created_at,
        unnest(@event_message_ids::text[]) AS message_id, unnest(@event_connector_ids::text[]) AS connector_id,
        unnest(@event_data::text[]) AS data,
        generate_series(1, cardinality(@event_ids::text[])) AS n) s
    WHERE s.message_id IN (SELECT done.id FROM done)
    ORDER BY s.n
)
SELECT done.id FROM done;

-- name: MessageFinish :one
UPDATE messages SET
    status = @status, last_reply = @last_reply, status_reason = @status_reason,
    next_attempt_at = sqlc.narg('next_attempt_at'), updated_at = now(),
    completed_at = CASE WHEN @status IN ('delivered', 'failed', 'cancelled') THEN now() ELSE NULL END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: MessageCancel :one
UPDATE messages SET status = 'cancelled', status_reason = @status_reason, updated_at = now(), completed_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'deferred')
RETURNING *;

-- name: MessageList :many
SELECT * FROM messages
WHERE tenant_id = @tenant_id
  AND (@before_id::text = '' OR id < @before_id)
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND (sqlc.narg('connector_id')::text IS NULL OR connector_id = sqlc.narg('connector_id'))
  AND (sqlc.narg('tag')::text IS NULL OR tags @> ARRAY[sqlc.narg('tag')::text])
  AND (sqlc.narg('recipient')::text IS NULL OR recipients @> ARRAY[sqlc.narg('recipient')::text])
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'))
ORDER BY id DESC
LIMIT @max;

-- MessagePurgeBodies drops the MIME of finished messages older than the cutoff, in batches.
-- name: MessagePurgeBodies :execrows
UPDATE messages SET mime = NULL, body_purged_at = now()
WHERE id IN (
    SELECT m.id FROM messages m
    WHERE m.mime IS NOT NULL AND m.created_at < @before
      AND m.status IN ('delivered', 'failed', 'cancelled')
    LIMIT @max
);

-- name: MessageEventInsert :exec
INSERT INTO message_events (message_id, tenant_id, type, data) VALUES (@message_id, @tenant_id, @type, @data);

-- MessageQueuedInsertMany writes new messages' `queued` timeline steps and their
-- message.queued stream events in one statement, each table's rows in the arrays' order.
-- (Two COPYs, as before, were four round trips and two statements parsed anew per
-- submission group; this one is prepared once per connection.)
-- name: MessageQueuedInsertMany :exec
WITH timeline AS (
    INSERT INTO message_events (message_id, tenant_id, type, data)
    SELECT t.message_id, t.tenant_id, 'queued', t.data::jsonb
    FROM (SELECT unnest(@timeline_message_ids::text[]) AS message_id, unnest(@timeline_tenant_ids::text[]) AS tenant_id,
        unnest(@timeline_data::text[]) AS data, generate_series(1, cardinality(@timeline_message_ids::text[])) AS n) t
    ORDER BY t.n
)
INSERT INTO events (id, tenant_id, type, created_at, message_id, connector_id, data)
SELECT s.id, s.tenant_id, s.type, s.created_at, s.message_id, s.connector_id, s.data::jsonb
FROM (SELECT unnest(@event_ids::text[]) AS id, unnest(@event_tenant_ids::text[]) AS tenant_id,
    unnest(@event_types::text[]) AS type, unnest(@event_created_ats::timestamptz[]) AS created_at,
    unnest(@event_message_ids::text[]) AS message_id, unnest(@event_connector_ids::text[]) AS connector_id,
    unnest(@event_data::text[]) AS data, generate_series(1, cardinality(@event_ids::text[])) AS n) s
ORDER BY s.n;

-- MessageEventDeleteForTenant removes a deleted tenant's timelines (message_events have no
-- foreign key to messages; see TenantDelete's caller).
-- name: MessageEventDeleteForTenant :execrows
DELETE FROM message_events WHERE tenant_id = @tenant_id;

-- name: MessageEventList :many
SELECT * FROM message_events WHERE tenant_id = @tenant_id AND message_id = @message_id ORDER BY id;

-- IdempotencyKeyClaim records a key, taking over one older than the window; no row means
-- a live key exists (the caller reads it). It waits for a concurrent transaction holding
-- the same key to finish.
-- name: IdempotencyKeyClaim :one
INSERT INTO idempotency_keys (tenant_id, key, request_hash, status_code, response)
VALUES (@tenant_id, @key, @request_hash, 0, '{}')
ON CONFLICT (tenant_id, key) DO UPDATE SET
    request_hash = excluded.request_hash, status_code = 0, response = '{}', created_at = now()
WHERE idempotency_keys.created_at < @expired_before
RETURNING created_at;

-- name: IdempotencyKeyGet :one
SELECT * FROM idempotency_keys WHERE tenant_id = @tenant_id AND key = @key;

-- name: IdempotencyKeySetResponse :exec
UPDATE idempotency_keys SET status_code = @status_code, response = @response
WHERE tenant_id = @tenant_id AND key = @key;

-- name: IdempotencyKeyDeleteExpired :execrows
DELETE FROM idempotency_keys WHERE created_at < @before;

-- UsageAdd adds n to each (scope, period, start, shard) counter. Callers pass the rows in
-- a fixed order (connector before tenant, short periods first) so concurrent submissions
-- lock them in the same order.
-- name: UsageAdd :exec
INSERT INTO usage_counters (scope_id, period, period_start, shard, count)
SELECT unnest(@scope_ids::text[]), unnest(@periods::text[]), unnest(@period_starts::timestamptz[]), unnest(@shards::smallint[]), @n::bigint
ON CONFLICT (scope_id, period, period_start, shard) DO UPDATE SET count = usage_counters.count + excluded.count;

-- UsageGet sums each (scope, period, start) counter over its shards.
-- name: UsageGet :many
SELECT scope_id, period, sum(count)::bigint AS count FROM usage_counters
WHERE (scope_id, period, period_start) IN (
    SELECT unnest(@scope_ids::text[]), unnest(@periods::text[]), unnest(@period_starts::timestamptz[])
)
GROUP BY scope_id, period;

-- name: UsageDeleteExpired :execrows
DELETE FROM usage_counters WHERE period_start < @before;

-- MessageLockForAttempt reads a message and holds its row until the start of an attempt is
-- committed, so two runs of one job cannot both see the previous attempt unfinished.
-- name: MessageLockForAttempt :one
SELECT * FROM messages WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- MessageListStuckTests finds test e-mails left `sending` by a process that stopped in the
-- middle of one (a test has no job that River could rescue). The purge index bounds the scan.
-- name: MessageListStuckTests :many
SELECT tenant_id, id FROM messages
WHERE mime IS NOT NULL AND created_at > @since AND source = 'test' AND status = 'sending' AND updated_at < @before
LIMIT @max_rows;

-- MessageSetJob points a message at a new delivery job (the reconciler's re-enqueue).
-- name: MessageSetJob :exec
UPDATE messages SET job_id = @job_id, status = CASE WHEN status = 'sending' THEN 'deferred' ELSE status END, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id;
