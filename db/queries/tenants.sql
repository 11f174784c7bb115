-- name: TenantInsert :one
INSERT INTO tenants (id, name, monthly_quota)
VALUES (@id, @name, @monthly_quota)
RETURNING *;

-- name: TenantGet :one
SELECT * FROM tenants WHERE id = @id;

-- name: TenantList :many
SELECT * FROM tenants
WHERE id > @after_id
ORDER BY id
LIMIT @max;

-- name: TenantUpdate :one
UPDATE tenants SET
    name          = CASE WHEN @set_name::boolean THEN @name ELSE name END,
    monthly_quota = CASE WHEN @set_monthly_quota::boolean THEN sqlc.narg('monthly_quota') ELSE monthly_quota END,
    updated_at    = now()
WHERE id = @id
RETURNING *;

-- name: TenantDelete :execrows
DELETE FROM tenants WHERE id = @id;

-- TenantLock serialises changes that span a tenant's rows (e.g. which connector is default).
-- name: TenantLock :one
SELECT id FROM tenants WHERE id = @id FOR UPDATE;
