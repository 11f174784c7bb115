-- name: SendingDomainInsert :one
INSERT INTO sending_domains (
    id, tenant_id, domain, verification_token, dkim_ed25519, dkim_rotation_days, next_check_at, created_at, updated_at
) VALUES (
    @id, @tenant_id, @domain, @verification_token, @dkim_ed25519, @dkim_rotation_days, @next_check_at, @created_at, @created_at
)
RETURNING *;

-- name: SendingDomainGet :one
SELECT * FROM sending_domains WHERE tenant_id = @tenant_id AND id = @id;

-- name: SendingDomainGetForUpdate :one
SELECT * FROM sending_domains WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: SendingDomainGetByName :one
SELECT * FROM sending_domains WHERE tenant_id = @tenant_id AND domain = @domain;

-- name: SendingDomainList :many
SELECT * FROM sending_domains
WHERE tenant_id = @tenant_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: SendingDomainDelete :execrows
DELETE FROM sending_domains WHERE tenant_id = @tenant_id AND id = @id;

-- SendingDomainUpdateState writes the outcome of a check: the service computes the next
-- state in Go from the row it locked.
-- name: SendingDomainUpdateState :one
UPDATE sending_domains SET
    status = @status, last_results = @last_results, spf_status = @spf_status,
    verified_at = @verified_at, first_failed_at = @first_failed_at,
    consecutive_failures = @consecutive_failures, revokes_at = @revokes_at,
    last_checked_at = @last_checked_at, next_check_at = @next_check_at, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- SendingDomainClaimManualCheck records a manual check unless one ran less than the
-- rate limit ago; no row means not found or too soon.
-- name: SendingDomainClaimManualCheck :one
UPDATE sending_domains SET last_manual_check_at = @now
WHERE tenant_id = @tenant_id AND id = @id
  AND (last_manual_check_at IS NULL OR last_manual_check_at <= @not_after)
RETURNING *;

-- SendingDomainClaimDue picks domains whose check is due, across all tenants (the
-- scheduler serves the whole platform), and pushes their next_check_at to lease_until so
-- another process does not pick them again while their check job waits or runs; the check
-- sets the real next time. SKIP LOCKED lets concurrent schedulers split the work.
-- name: SendingDomainClaimDue :many
WITH due AS (
    SELECT d.id FROM sending_domains d
    WHERE d.next_check_at <= @now
    ORDER BY d.next_check_at
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE sending_domains s SET next_check_at = @lease_until
FROM due WHERE s.id = due.id
RETURNING s.id, s.tenant_id;

-- name: DomainCheckInsert :one
INSERT INTO sending_domain_checks (
    id, tenant_id, domain_id, trigger, outcome, status_before, status_after, results, started_at, duration_ms
) VALUES (
    @id, @tenant_id, @domain_id, @trigger, @outcome, @status_before, @status_after, @results, @started_at, @duration_ms
)
RETURNING *;

-- DomainCheckList pages newest first: before_id is the last id of the previous page.
-- name: DomainCheckList :many
SELECT * FROM sending_domain_checks
WHERE tenant_id = @tenant_id AND domain_id = @domain_id
  AND (@before_id::text = '' OR id < @before_id)
ORDER BY id DESC
LIMIT @max;

-- DomainCheckPurge deletes old check history; a domain's latest results stay on its row.
-- name: DomainCheckPurge :execrows
DELETE FROM sending_domain_checks WHERE started_at < @before;

-- name: SendingDomainEventInsert :exec
INSERT INTO sending_domain_events (id, tenant_id, domain_id, type, from_status, to_status, code, reason, check_id, created_at)
VALUES (@id, @tenant_id, @domain_id, @type, @from_status, @to_status, @code, @reason, @check_id, @created_at);

-- name: SendingDomainEventList :many
SELECT * FROM sending_domain_events
WHERE tenant_id = @tenant_id AND domain_id = @domain_id
  AND (@before_id::text = '' OR id < @before_id)
ORDER BY id DESC
LIMIT @max;

-- name: SendingDomainListByNames :many
-- Every tenant's domains with one of the names, newest first: the development DNS server
-- publishes the records of domains under its suffix whoever added them.
SELECT * FROM sending_domains
WHERE domain = ANY(@names::text[])
ORDER BY created_at DESC, id DESC
LIMIT 100;

-- SendingDomainVerifiedElsewhere reports whether another tenant holds domain with send rights
-- (verified or at_risk) while tenant_id does not: an smtp connector's default sender there
-- would be sending as someone else's proven domain. It spans tenants on purpose.
-- name: SendingDomainVerifiedElsewhere :one
SELECT EXISTS (
    SELECT 1 FROM sending_domains o
    WHERE o.domain = @domain AND o.tenant_id <> @tenant_id AND o.status IN ('verified', 'at_risk')
) AND NOT EXISTS (
    SELECT 1 FROM sending_domains m
    WHERE m.tenant_id = @tenant_id AND m.domain = @domain AND m.status IN ('verified', 'at_risk')
) AS claimed;
