-- name: DKIMKeyInsert :one
INSERT INTO sending_domain_dkim_keys (
    id, tenant_id, domain_id, selector, algorithm, public_key, private_key_id, private_key, state, created_at, activated_at
) VALUES (
    @id, @tenant_id, @domain_id, @selector, @algorithm, @public_key, @private_key_id, @private_key, @state, @created_at, @activated_at
)
RETURNING *;

-- name: DKIMKeyListByDomain :many
SELECT * FROM sending_domain_dkim_keys
WHERE tenant_id = @tenant_id AND domain_id = @domain_id
ORDER BY created_at, id;

-- DKIMKeyListByDomains loads the keys of a page of domains at once.
-- name: DKIMKeyListByDomains :many
SELECT * FROM sending_domain_dkim_keys
WHERE tenant_id = @tenant_id AND domain_id = ANY(@domain_ids::text[])
ORDER BY domain_id, created_at, id;

-- name: DKIMKeySetState :exec
UPDATE sending_domain_dkim_keys SET state = @state, activated_at = @activated_at, retire_after = @retire_after
WHERE tenant_id = @tenant_id AND id = @id;

-- name: DKIMKeyDelete :exec
DELETE FROM sending_domain_dkim_keys WHERE tenant_id = @tenant_id AND id = @id;

-- SendingDomainNextDKIMGeneration numbers a new selector of the domain.
-- name: SendingDomainNextDKIMGeneration :one
UPDATE sending_domains SET dkim_generation = dkim_generation + 1, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING dkim_generation;

-- name: SendingDomainUpdateDKIMPolicy :one
UPDATE sending_domains SET dkim_ed25519 = @dkim_ed25519, dkim_rotation_days = @dkim_rotation_days, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;
