-- Queries of the migration fan-out (package migrate).

-- name: ListMigrationTenants :many
-- The tenants a fan-out considers, with the catalog's schema_version: the one
-- query that says who is behind.
SELECT id, key, status, schema_name, cluster, schema_version
FROM tenants
WHERE status = ANY (sqlc.arg('statuses')::text[])
  AND (sqlc.narg('ids')::text[] IS NULL OR id = ANY (sqlc.narg('ids')::text[]))
  AND (sqlc.narg('id_prefix')::text IS NULL OR starts_with(id, sqlc.narg('id_prefix')::text))
ORDER BY id;

-- name: InsertMigrationRun :one
INSERT INTO migration_runs (direction, target, state, actor, selection, tenants)
VALUES ($1, $2, 'running', $3, $4, $5)
RETURNING *;

-- name: GetMigrationRun :one
SELECT * FROM migration_runs WHERE id = $1;

-- name: GetLatestMigrationRun :one
SELECT * FROM migration_runs ORDER BY id DESC LIMIT 1;

-- name: ResumeMigrationRun :one
UPDATE migration_runs
SET state = 'running', attempts = attempts + 1, tenants = $2, note = '',
    updated_at = now(), finished_at = NULL
WHERE id = $1
RETURNING *;

-- name: FinishMigrationRun :exec
UPDATE migration_runs
SET state = $2, succeeded = $3, failed = $4, skipped = $5, not_started = $6, note = $7,
    updated_at = now(), finished_at = now()
WHERE id = $1;

-- name: UpsertMigrationResult :exec
-- Written in the same transaction as each migration step (and, for a failed
-- step, right after its rollback). new_attempt is true on a tenant's first
-- step in this process, so a retried tenant counts one more attempt.
INSERT INTO migration_results (run_id, tenant_id, state, from_version, to_version, versions,
                               error, sqlstate, duration_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (run_id, tenant_id) DO UPDATE
SET state = excluded.state, from_version = excluded.from_version, to_version = excluded.to_version,
    versions = excluded.versions, error = excluded.error, sqlstate = excluded.sqlstate,
    duration_us = excluded.duration_us, finished_at = now(),
    attempts = migration_results.attempts + CASE WHEN sqlc.arg('new_attempt')::boolean THEN 1 ELSE 0 END;

-- name: ListMigrationResults :many
SELECT * FROM migration_results WHERE run_id = $1 ORDER BY tenant_id;

-- name: LatestMigrationResults :many
-- Each tenant's most recent ledger entry, for status displays.
SELECT DISTINCT ON (tenant_id) *
FROM migration_results
WHERE tenant_id = ANY (sqlc.arg('ids')::text[])
ORDER BY tenant_id, run_id DESC;

-- name: RecordMigrationStep :exec
-- One committed migration step of a tenant, in the step's own transaction:
-- the catalog's schema_version and the tenant's ledger row, in one statement
-- (the fan-out sends it inside the step's single round trip).
WITH catalog AS (
    UPDATE tenants SET schema_version = sqlc.arg('to_version'), updated_at = now()
    WHERE id = sqlc.arg('tenant_id')
)
INSERT INTO migration_results (run_id, tenant_id, state, from_version, to_version, versions, duration_us)
VALUES (sqlc.arg('run_id'), sqlc.arg('tenant_id'), sqlc.arg('state'), sqlc.arg('from_version'),
        sqlc.arg('to_version'), sqlc.arg('versions'), sqlc.arg('duration_us'))
ON CONFLICT (run_id, tenant_id) DO UPDATE
SET state = excluded.state, from_version = excluded.from_version, to_version = excluded.to_version,
    versions = excluded.versions, error = NULL, sqlstate = NULL,
    duration_us = excluded.duration_us, finished_at = now(),
    attempts = migration_results.attempts + CASE WHEN sqlc.arg('new_attempt')::boolean THEN 1 ELSE 0 END;
