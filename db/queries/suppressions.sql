-- SuppressionUpsert adds an address or renews its entry (a new bounce replaces an old
-- reason and expiry).
-- name: SuppressionUpsert :one
INSERT INTO suppressions (tenant_id, address, id, reason, source_message_id, detail, expires_at)
VALUES (@tenant_id, @address, @id, @reason, @source_message_id, @detail, @expires_at)
ON CONFLICT (tenant_id, address) DO UPDATE SET
    reason = EXCLUDED.reason, source_message_id = EXCLUDED.source_message_id,
    detail = EXCLUDED.detail, expires_at = EXCLUDED.expires_at, created_at = now()
RETURNING *;

-- name: SuppressionGet :one
SELECT * FROM suppressions
WHERE tenant_id = @tenant_id AND address = @address
  AND (expires_at IS NULL OR expires_at > now());

-- SuppressionMatch returns the live entries among addresses.
-- name: SuppressionMatch :many
SELECT * FROM suppressions
WHERE tenant_id = @tenant_id AND address = ANY(@addresses::text[])
  AND (expires_at IS NULL OR expires_at > now());

-- SuppressionMatchPairs returns the live entries among (tenant, address) pairs, the i-th
-- address being the i-th tenant's: one lookup for submissions of several tenants, each
-- address scoped by its own tenant.
-- name: SuppressionMatchPairs :many
SELECT * FROM suppressions
WHERE (tenant_id, address) IN (SELECT unnest(@tenant_ids::text[]), unnest(@addresses::text[]))
  AND (expires_at IS NULL OR expires_at > now());

-- name: SuppressionList :many
SELECT * FROM suppressions
WHERE tenant_id = @tenant_id
  AND (@before_id::text = '' OR id < @before_id)
  AND (@address_prefix::text = '' OR (address >= @address_prefix AND address < @address_prefix || chr(1114111)))
  AND (sqlc.narg('reason')::text IS NULL OR reason = sqlc.narg('reason'))
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY id DESC
LIMIT @max;

-- name: SuppressionDelete :execrows
DELETE FROM suppressions WHERE tenant_id = @tenant_id AND address = @address;

-- name: SuppressionDeleteExpired :execrows
DELETE FROM suppressions WHERE expires_at <= now();
