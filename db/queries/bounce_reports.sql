-- name: BounceReportInsert :exec
INSERT INTO bounce_reports (id, kind, outcome, tenant_id, message_id, envelope_from, rcpt_to, remote_addr, problem, details, raw, size_bytes)
VALUES (@id, @kind, @outcome, @tenant_id, @message_id, @envelope_from, @rcpt_to, @remote_addr, @problem, @details, @raw, @size_bytes);

-- BounceReportList is for the operator: every tenant's reports, newest first.
-- name: BounceReportList :many
SELECT * FROM bounce_reports
WHERE (@before_id::text = '' OR id < @before_id)
  AND (sqlc.narg('outcome')::text IS NULL OR outcome = sqlc.narg('outcome'))
ORDER BY id DESC
LIMIT @max;

-- MessageGetForBounce finds a message by id alone: the bounce token that names it is
-- HMAC-signed, so only Sendwerk can have made it, and it carries no tenant. The row stays
-- locked against deletion until the transaction that records the report ends (timeline
-- and stream rows have no foreign key that would refuse rows for a deleted tenant).
-- name: MessageGetForBounce :one
SELECT * FROM messages WHERE id = @id FOR KEY SHARE;

-- BounceReportPurge deletes reports received before the cutoff (they may hold whole messages).
-- name: BounceReportPurge :execrows
DELETE FROM bounce_reports WHERE received_at < @before;
