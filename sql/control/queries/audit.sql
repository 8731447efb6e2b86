-- name: InsertAudit :one
INSERT INTO audit_log (actor, tenant_id, action, target, detail)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: ListAudit :many
SELECT * FROM audit_log
WHERE (sqlc.narg('tenant_id')::text IS NULL OR tenant_id = sqlc.narg('tenant_id'))
  AND (sqlc.narg('action')::text IS NULL OR action = sqlc.narg('action'))
  AND (sqlc.narg('before_id')::bigint IS NULL OR id < sqlc.narg('before_id'))
ORDER BY id DESC
LIMIT sqlc.arg('max_rows');
