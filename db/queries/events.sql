-- name: EventInsert :one
INSERT INTO events (id, tenant_id, type, created_at, message_id, domain_id, connector_id, webhook_id, data)
VALUES (@id, @tenant_id, @type, @created_at, @message_id, @domain_id, @connector_id, @webhook_id, @data)
RETURNING sequence;

-- name: EventInsertMany :copyfrom
INSERT INTO events (id, tenant_id, type, created_at, message_id, domain_id, connector_id, webhook_id, data)
VALUES (@id, @tenant_id, @type, @created_at, @message_id, @domain_id, @connector_id, @webhook_id, @data);

-- EventTenantIDs lists every tenant, for events that concern all of them (platform facts).
-- The rows stay locked against deletion until the caller's transaction ends: events have no
-- foreign key to tenants, and a tenant deleted meanwhile must not get one.
-- name: EventTenantIDs :many
SELECT id FROM tenants ORDER BY id FOR KEY SHARE;

-- EventList pages through a tenant's stream in position order (xid, sequence). Only events
-- below event_horizon() are listed (and the caller's own), so a cursor never skips an event
-- that commits later.
-- name: EventList :many
SELECT id, tenant_id, type, created_at, sequence, xid::text AS xid, message_id, domain_id, connector_id, webhook_id, data
FROM events
WHERE tenant_id = @tenant_id
  AND (xid < event_horizon() OR xid = pg_current_xact_id_if_assigned())
  AND (@after_xid::text = '' OR (xid, sequence) > (CAST(@after_xid::text AS xid8), @after_sequence::bigint))
  AND (cardinality(@types::text[]) = 0 OR type = ANY(@types::text[]))
  AND (sqlc.narg('message_id')::text IS NULL OR message_id = sqlc.narg('message_id'))
  AND (sqlc.narg('domain_id')::text IS NULL OR domain_id = sqlc.narg('domain_id'))
  AND (sqlc.narg('connector_id')::text IS NULL OR (connector_id = sqlc.narg('connector_id') AND message_id IS NULL))
  AND (sqlc.narg('webhook_id')::text IS NULL OR webhook_id = sqlc.narg('webhook_id'))
  AND (sqlc.narg('created_after')::timestamptz IS NULL OR created_at >= sqlc.narg('created_after'))
  AND (sqlc.narg('created_before')::timestamptz IS NULL OR created_at < sqlc.narg('created_before'))
ORDER BY xid, sequence
LIMIT @max;

-- EventListSince reads every tenant's events after a position, for webhook dispatch, with
-- the same visibility rule as EventList.
-- name: EventListSince :many
SELECT id, tenant_id, type, created_at, sequence, xid::text AS xid, message_id, domain_id, connector_id, webhook_id, data
FROM events
WHERE xid < event_horizon()
  AND (@after_xid::text = '' OR (xid, sequence) > (CAST(@after_xid::text AS xid8), @after_sequence::bigint))
ORDER BY xid, sequence
LIMIT @max;

-- name: EventGet :one
SELECT id, tenant_id, type, created_at, sequence, xid::text AS xid, message_id, domain_id, connector_id, webhook_id, data
FROM events WHERE tenant_id = @tenant_id AND id = @id;

-- EventDeleteExpired drops events whose (time-ordered) id is below before_id, in batches.
-- name: EventDeleteExpired :execrows
DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.id < @before_id ORDER BY e.id LIMIT @max);

-- EventDeleteForTenant removes a deleted tenant's stream (events have no foreign key to
-- tenants; see TenantDelete's caller). Their webhook deliveries go by cascade.
-- name: EventDeleteForTenant :execrows
DELETE FROM events WHERE tenant_id = @tenant_id;
