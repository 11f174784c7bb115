-- name: WebhookInsert :one
INSERT INTO webhooks (id, tenant_id, url, description, event_types, enabled, secret, secret_key_id)
VALUES (@id, @tenant_id, @url, @description, @event_types, @enabled, @secret, @secret_key_id)
RETURNING *;

-- name: WebhookGet :one
SELECT * FROM webhooks WHERE tenant_id = @tenant_id AND id = @id;

-- name: WebhookGetForUpdate :one
SELECT * FROM webhooks WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: WebhookList :many
SELECT * FROM webhooks WHERE tenant_id = @tenant_id AND (@after_id::text = '' OR id > @after_id)
ORDER BY id LIMIT @max;

-- name: WebhookUpdate :one
UPDATE webhooks SET url = @url, description = @description, event_types = @event_types, enabled = @enabled,
    failing_since = sqlc.narg('failing_since'), disabled_reason = @disabled_reason, disabled_at = sqlc.narg('disabled_at'), updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: WebhookRotateSecret :one
UPDATE webhooks SET previous_secret = secret, previous_secret_key_id = secret_key_id,
    previous_secret_expires_at = @previous_expires_at, secret = @secret, secret_key_id = @secret_key_id, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: WebhookDelete :execrows
DELETE FROM webhooks WHERE tenant_id = @tenant_id AND id = @id;

-- WebhookListEnabledFor lists the enabled webhooks of the given tenants, for dispatch.
-- name: WebhookListEnabledFor :many
SELECT id, tenant_id, event_types, created_at FROM webhooks WHERE tenant_id = ANY(@tenant_ids::text[]) AND enabled;

-- name: WebhookRecordSuccess :exec
UPDATE webhooks SET failing_since = NULL WHERE id = @id AND failing_since IS NOT NULL;

-- WebhookRecordFailure notes a failed attempt and returns since when the endpoint fails.
-- name: WebhookRecordFailure :one
UPDATE webhooks SET failing_since = coalesce(failing_since, @at) WHERE id = @id
RETURNING failing_since, enabled, url;

-- name: WebhookDisable :execrows
UPDATE webhooks SET enabled = false, disabled_reason = @reason, disabled_at = @at, updated_at = now()
WHERE id = @id AND enabled;

-- name: WebhookDispatchLock :one
SELECT after_xid, after_sequence FROM webhook_dispatch WHERE id = 1 FOR UPDATE SKIP LOCKED;

-- name: WebhookDispatchAdvance :exec
UPDATE webhook_dispatch SET after_xid = @after_xid, after_sequence = @after_sequence WHERE id = 1;

-- name: WebhookDeliveryInsertMany :copyfrom
INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, status)
VALUES (@id, @tenant_id, @webhook_id, @event_id, @event_type, @status);

-- WebhookDeliveryLoad reads what one attempt needs: the delivery, its webhook and its event.
-- name: WebhookDeliveryLoad :one
SELECT sqlc.embed(d), sqlc.embed(w), e.type AS ev_type, e.created_at AS ev_created_at, e.sequence AS ev_sequence,
       e.message_id AS ev_message_id, e.domain_id AS ev_domain_id, e.connector_id AS ev_connector_id, e.webhook_id AS ev_webhook_id, e.data AS ev_data
FROM webhook_deliveries d
JOIN webhooks w ON w.id = d.webhook_id
JOIN events e ON e.id = d.event_id
WHERE d.tenant_id = @tenant_id AND d.id = @id;

-- name: WebhookDeliveryGet :one
SELECT * FROM webhook_deliveries WHERE tenant_id = @tenant_id AND webhook_id = @webhook_id AND id = @id;

-- name: WebhookDeliveryFinish :exec
UPDATE webhook_deliveries SET status = @status, attempts = attempts + 1, last_status_code = @last_status_code,
    next_attempt_at = sqlc.narg('next_attempt_at'), updated_at = now()
WHERE id = @id;

-- WebhookDeliveryDrop ends a delivery that will not be attempted (its webhook is disabled).
-- name: WebhookDeliveryDrop :exec
UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, updated_at = now() WHERE id = @id;

-- name: WebhookDeliveryReset :exec
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now() WHERE id = @id;

-- name: WebhookDeliveryList :many
SELECT * FROM webhook_deliveries
WHERE tenant_id = @tenant_id AND webhook_id = @webhook_id AND (@before_id::text = '' OR id < @before_id)
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
ORDER BY id DESC LIMIT @max;

-- name: WebhookAttemptInsert :exec
INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, latency_ms, response_headers, response_body, error)
VALUES (@delivery_id, @attempt, @attempted_at, @status_code, @latency_ms, @response_headers, @response_body, @error);

-- name: WebhookAttemptList :many
SELECT * FROM webhook_attempts WHERE delivery_id = ANY(@delivery_ids::text[]) ORDER BY delivery_id, id;

-- name: PlatformFactsGet :one
SELECT facts FROM platform_facts WHERE id = 1 FOR UPDATE;

-- name: PlatformFactsPut :exec
INSERT INTO platform_facts (id, facts) VALUES (1, @facts)
ON CONFLICT (id) DO UPDATE SET facts = excluded.facts, updated_at = now();

-- WebhookAnyEnabled tells the dispatcher whether any tenant has a webhook to dispatch to.
-- name: WebhookAnyEnabled :one
SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled);

-- WebhookDispatchSkipIdle moves the dispatch position past the events below the horizon
-- while no webhook is enabled, in one statement (one snapshot): dispatching them would
-- have found no webhook, and a webhook enabled later does not wait behind them. It never
-- moves the position back.
-- name: WebhookDispatchSkipIdle :execrows
UPDATE webhook_dispatch d SET after_xid = e.xid::text, after_sequence = e.sequence
FROM (SELECT xid, sequence FROM events WHERE xid < event_horizon() ORDER BY xid DESC, sequence DESC LIMIT 1) e
WHERE d.id = 1
  AND NOT EXISTS (SELECT 1 FROM webhooks WHERE enabled)
  AND (d.after_xid = '' OR (e.xid, e.sequence) > (CAST(d.after_xid AS xid8), d.after_sequence));
