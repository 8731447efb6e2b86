-- name: InsertTenant :one
INSERT INTO tenants (id, key, name, status, schema_name, role_name, cluster, limits, settings)
VALUES ($1, $2, $3, 'provisioning', $4, $5, $6, $7, $8)
RETURNING *;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = $1;

-- name: GetTenantForUpdate :one
SELECT * FROM tenants WHERE id = $1 FOR UPDATE;

-- name: ListTenants :many
SELECT * FROM tenants
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
  AND id > sqlc.arg('after')::text
ORDER BY id
LIMIT sqlc.arg('max_rows');

-- name: CountTenantsByStatus :many
SELECT status, count(*) AS n FROM tenants GROUP BY status ORDER BY status;

-- name: SetTenantStatus :one
UPDATE tenants
SET status = $2, deleted_at = NULL, retain_until = NULL, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: SetTenantDeleted :one
UPDATE tenants
SET status = 'deleted', deleted_at = now(), retain_until = $2, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: SetTenantSchemaVersion :exec
UPDATE tenants SET schema_version = $2, updated_at = now() WHERE id = $1;

-- name: UpdateTenantMeta :one
UPDATE tenants
SET name = $2, limits = $3, settings = $4, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: DeleteTenantRow :exec
DELETE FROM tenants WHERE id = $1;

-- name: ListExpiredTenants :many
SELECT id FROM tenants
WHERE status = 'deleted' AND retain_until <= sqlc.arg('now')::timestamptz
ORDER BY retain_until
LIMIT sqlc.arg('max_rows');

-- name: CountTenantsByCluster :many
SELECT cluster, count(*) AS n FROM tenants GROUP BY cluster ORDER BY cluster;

-- name: SetTenantCluster :one
UPDATE tenants SET cluster = $2, updated_at = now() WHERE id = $1 RETURNING *;
