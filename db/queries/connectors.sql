-- name: ConnectorInsert :one
INSERT INTO connectors (
    id, tenant_id, name, kind, status, is_default,
    smtp_host, smtp_port, smtp_security, smtp_auth_mechanism, smtp_username,
    smtp_password_key_id, smtp_password_ciphertext, smtp_helo_name,
    smtp_connect_timeout_s, smtp_command_timeout_s, smtp_tls_server_name, smtp_tls_skip_verify,
    default_sender_email, default_sender_name,
    limit_per_minute, limit_per_hour, limit_per_day, monthly_quota
) VALUES (
    @id, @tenant_id, @name, @kind, @status,
    @is_default OR NOT EXISTS (SELECT 1 FROM connectors c WHERE c.tenant_id = @tenant_id AND c.is_default),
    @smtp_host, @smtp_port, @smtp_security, @smtp_auth_mechanism, @smtp_username,
    @smtp_password_key_id, @smtp_password_ciphertext, @smtp_helo_name,
    @smtp_connect_timeout_s, @smtp_command_timeout_s, @smtp_tls_server_name, @smtp_tls_skip_verify,
    @default_sender_email, @default_sender_name,
    @limit_per_minute, @limit_per_hour, @limit_per_day, @monthly_quota
)
RETURNING *;

-- name: ConnectorGet :one
SELECT * FROM connectors WHERE tenant_id = @tenant_id AND id = @id;

-- name: ConnectorGetForUpdate :one
SELECT * FROM connectors WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: ConnectorGetDefault :one
SELECT * FROM connectors WHERE tenant_id = @tenant_id AND is_default;

-- name: ConnectorList :many
SELECT * FROM connectors
WHERE tenant_id = @tenant_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- ConnectorUpdate writes a whole connector back; the service merges patches in Go.
-- name: ConnectorUpdate :one
UPDATE connectors SET
    name = @name, status = @status,
    smtp_host = @smtp_host, smtp_port = @smtp_port, smtp_security = @smtp_security,
    smtp_auth_mechanism = @smtp_auth_mechanism, smtp_username = @smtp_username,
    smtp_password_key_id = @smtp_password_key_id, smtp_password_ciphertext = @smtp_password_ciphertext,
    smtp_helo_name = @smtp_helo_name, smtp_connect_timeout_s = @smtp_connect_timeout_s,
    smtp_command_timeout_s = @smtp_command_timeout_s, smtp_tls_server_name = @smtp_tls_server_name,
    smtp_tls_skip_verify = @smtp_tls_skip_verify,
    default_sender_email = @default_sender_email, default_sender_name = @default_sender_name,
    limit_per_minute = @limit_per_minute, limit_per_hour = @limit_per_hour,
    limit_per_day = @limit_per_day, monthly_quota = @monthly_quota,
    last_test = @last_test, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: ConnectorClearDefault :exec
UPDATE connectors SET is_default = false, updated_at = now()
WHERE tenant_id = @tenant_id AND is_default AND id <> @id;

-- name: ConnectorSetDefault :one
UPDATE connectors SET is_default = true, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- ConnectorPromoteOldest makes the oldest connector the default when the tenant has none.
-- name: ConnectorPromoteOldest :exec
UPDATE connectors SET is_default = true, updated_at = now()
WHERE id = (
    SELECT c.id FROM connectors c WHERE c.tenant_id = @tenant_id ORDER BY c.id LIMIT 1
) AND NOT EXISTS (SELECT 1 FROM connectors d WHERE d.tenant_id = @tenant_id AND d.is_default);

-- name: ConnectorSetLastTest :execrows
UPDATE connectors SET last_test = @last_test
WHERE tenant_id = @tenant_id AND id = @id;

-- name: ConnectorDelete :execrows
DELETE FROM connectors WHERE tenant_id = @tenant_id AND id = @id;

-- ConnectorBreakerFail counts one more failure of a kind; a different kind starts over.
-- name: ConnectorBreakerFail :one
UPDATE connectors SET
    consecutive_failures = CASE WHEN failure_code = @failure_code THEN consecutive_failures + 1 ELSE 1 END,
    failure_code = @failure_code, last_failure = @last_failure
WHERE tenant_id = @tenant_id AND id = @id
RETURNING consecutive_failures, status;

-- ConnectorBreakerReset forgets failures after a delivery got past the login.
-- name: ConnectorBreakerReset :exec
UPDATE connectors SET consecutive_failures = 0, failure_code = NULL
WHERE tenant_id = @tenant_id AND id = @id AND consecutive_failures > 0;

-- ConnectorBreakerTrip pauses an active connector; no row when it was paused already.
-- name: ConnectorBreakerTrip :one
UPDATE connectors SET status = 'paused', paused_reason = @paused_reason, paused_at = now(), updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND status = 'active'
RETURNING *;

-- ConnectorBreakerResume makes a connector the breaker paused active again and forgets its
-- failures; no row when it is active or was paused by hand.
-- name: ConnectorBreakerResume :one
UPDATE connectors SET status = 'active', paused_reason = NULL, paused_at = NULL,
    consecutive_failures = 0, failure_code = NULL, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND status = 'paused' AND paused_reason IN ('auth.failed', 'tls.certificate_invalid')
RETURNING *;

-- ConnectorSetPauseReason records why the connector's status changed through the API:
-- a reason when it was paused, none (and no failures) when it was resumed.
-- name: ConnectorSetPauseReason :one
UPDATE connectors SET paused_reason = sqlc.narg('paused_reason'),
    paused_at = CASE WHEN sqlc.narg('paused_reason')::text IS NULL THEN NULL ELSE now() END,
    consecutive_failures = CASE WHEN sqlc.narg('paused_reason')::text IS NULL THEN 0 ELSE consecutive_failures END,
    failure_code = CASE WHEN sqlc.narg('paused_reason')::text IS NULL THEN NULL ELSE failure_code END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;
