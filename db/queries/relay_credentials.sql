-- RelayCredentialInsert inserts only when the connector belongs to the tenant; no row means
-- no such connector.
-- name: RelayCredentialInsert :one
INSERT INTO relay_credentials (id, tenant_id, connector_id, name, username, password_hash)
SELECT @id, c.tenant_id, c.id, @name, @username, @password_hash
FROM connectors c
WHERE c.tenant_id = @tenant_id AND c.id = @connector_id
RETURNING *;

-- name: RelayCredentialList :many
SELECT * FROM relay_credentials
WHERE tenant_id = @tenant_id AND connector_id = @connector_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: RelayCredentialRevoke :one
UPDATE relay_credentials SET revoked_at = coalesce(revoked_at, now())
WHERE tenant_id = @tenant_id AND connector_id = @connector_id AND id = @id
RETURNING *;

-- RelayCredentialGetByUsername is not scoped by tenant: it is how an SMTP login finds its
-- tenant and connector.
-- name: RelayCredentialGetByUsername :one
SELECT * FROM relay_credentials WHERE username = @username;

-- RelayCredentialTouch records use at minute resolution so a busy mail server does not
-- write on every login.
-- name: RelayCredentialTouch :exec
UPDATE relay_credentials SET last_used_at = now()
WHERE tenant_id = @tenant_id AND id = @id
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
