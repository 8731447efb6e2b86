-- name: CreateAgreement :one
-- New agreements start as 'draft' at version 1.
INSERT INTO agreements (
    brand_id, licensee_id, title, territory, start_date, end_date,
    royalty_rate_bps, minimum_guarantee_minor, minimum_guarantee_currency
) VALUES (
    sqlc.arg('brand_id'), sqlc.arg('licensee_id'), sqlc.arg('title'),
    sqlc.arg('territory'), sqlc.arg('start_date'), sqlc.arg('end_date'),
    sqlc.arg('royalty_rate_bps'), sqlc.arg('minimum_guarantee_minor'),
    sqlc.arg('minimum_guarantee_currency')
)
RETURNING *;

-- name: GetAgreement :one
SELECT * FROM agreements
WHERE id = sqlc.arg('id');

-- name: GetAgreementForUpdate :one
-- GetAgreement with a row lock held until the transaction ends: serializes
-- the approval workflow's read-decide-update steps on one agreement (e.g.
-- two approvers deciding the last two steps at once).
SELECT * FROM agreements
WHERE id = sqlc.arg('id')
FOR UPDATE;

-- name: ListAgreements :many
-- All filters optional (NULL = no filter); territory matches agreements that
-- include that country code. Newest first.
SELECT * FROM agreements
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('brand_id')::uuid IS NULL OR brand_id = sqlc.narg('brand_id')::uuid)
  AND (sqlc.narg('licensee_id')::uuid IS NULL OR licensee_id = sqlc.narg('licensee_id')::uuid)
  AND (sqlc.narg('territory')::text IS NULL OR sqlc.narg('territory')::text = ANY (territory))
ORDER BY created_at DESC, id
LIMIT sqlc.arg('limit') OFFSET sqlc.arg('offset');

-- name: CountAgreements :one
SELECT count(*) FROM agreements
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('brand_id')::uuid IS NULL OR brand_id = sqlc.narg('brand_id')::uuid)
  AND (sqlc.narg('licensee_id')::uuid IS NULL OR licensee_id = sqlc.narg('licensee_id')::uuid)
  AND (sqlc.narg('territory')::text IS NULL OR sqlc.narg('territory')::text = ANY (territory));

-- name: UpdateAgreement :one
-- Replaces the terms if version still matches, and bumps version. No row
-- (pgx.ErrNoRows) means the agreement was updated since it was read, or does
-- not exist: tell the two apart with GetAgreement. Which statuses allow
-- editing terms is application policy, enforced by the caller.
UPDATE agreements
SET title                      = sqlc.arg('title'),
    territory                  = sqlc.arg('territory'),
    start_date                 = sqlc.arg('start_date'),
    end_date                   = sqlc.arg('end_date'),
    royalty_rate_bps           = sqlc.arg('royalty_rate_bps'),
    minimum_guarantee_minor    = sqlc.arg('minimum_guarantee_minor'),
    minimum_guarantee_currency = sqlc.arg('minimum_guarantee_currency'),
    version                    = version + 1,
    updated_at                 = now()
WHERE id = sqlc.arg('id')
  AND version = sqlc.arg('version')
RETURNING *;

-- name: UpdateAgreementStatus :one
-- Sets the status and bumps version. expected_version is optional: NULL skips
-- the optimistic check (e.g. a scheduled job expiring agreements). Which
-- transitions are legal is application policy, enforced by the caller.
UPDATE agreements
SET status     = sqlc.arg('status'),
    version    = version + 1,
    updated_at = now()
WHERE id = sqlc.arg('id')
  AND (sqlc.narg('expected_version')::integer IS NULL
       OR version = sqlc.narg('expected_version')::integer)
RETURNING *;

-- name: ListExpiringAgreements :many
-- Approved or active agreements whose end_date falls before the given date
-- (e.g. today + 90 days), soonest first. Uses agreements_end_date_live_idx.
SELECT * FROM agreements
WHERE status IN ('approved', 'active')
  AND end_date < sqlc.arg('before')::date
ORDER BY end_date, id
LIMIT sqlc.arg('limit');

-- name: DeleteAgreement :execrows
-- Cascades to the agreement's approvals. Returns 0 when no such agreement.
DELETE FROM agreements
WHERE id = sqlc.arg('id');
