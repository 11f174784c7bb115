-- name: APIKeyInsert :one
INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, scopes, allowed_cidrs, expires_at)
VALUES (@id, @tenant_id, @name, @prefix, @secret_hash, @scopes, @allowed_cidrs, @expires_at)
RETURNING *;

-- name: APIKeyGet :one
SELECT * FROM api_keys WHERE tenant_id = @tenant_id AND id = @id;

-- name: APIKeyList :many
SELECT * FROM api_keys
WHERE tenant_id = @tenant_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: APIKeyRevoke :one
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- APIKeyGetBySecretHash is the one query not scoped by tenant: it is how a request finds its tenant.
-- name: APIKeyGetBySecretHash :one
SELECT * FROM api_keys WHERE secret_hash = @secret_hash;

-- APIKeyTouch records use at minute resolution so a busy key does not write on every request.
-- name: APIKeyTouch :exec
UPDATE api_keys SET last_used_at = now()
WHERE tenant_id = @tenant_id AND id = @id
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: APIKeyDeleteStale :execrows
DELETE FROM api_keys
WHERE (revoked_at IS NOT NULL AND revoked_at < @before::timestamptz)
   OR (expires_at IS NOT NULL AND expires_at < @before::timestamptz);
