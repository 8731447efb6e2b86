-- name: CreateApproval :one
-- Adds a pending step to the agreement's approval chain (steps are unique per
-- agreement and decided at most once). approver is optional: set it to assign
-- the step to one subject, leave it NULL to let any approver decide.
INSERT INTO approvals (agreement_id, step, approver)
VALUES (sqlc.arg('agreement_id'), sqlc.arg('step'), sqlc.narg('approver'))
RETURNING *;

-- name: GetApproval :one
SELECT * FROM approvals
WHERE id = sqlc.arg('id');

-- name: ListApprovalsByAgreement :many
SELECT * FROM approvals
WHERE agreement_id = sqlc.arg('agreement_id')
ORDER BY step;

-- name: DecideApproval :one
-- Records 'approved' or 'rejected' (anything else violates
-- approvals_decision_check / approvals_decided_check). Only a pending step is
-- decided, and only by its assigned approver if it has one; otherwise no row
-- is returned (pgx.ErrNoRows).
UPDATE approvals
SET decision   = sqlc.arg('decision'),
    approver   = sqlc.arg('approver')::text,
    comment    = sqlc.narg('comment'),
    decided_at = now()
WHERE id = sqlc.arg('id')
  AND decision = 'pending'
  AND (approvals.approver IS NULL OR approvals.approver = sqlc.arg('approver')::text)
RETURNING *;

-- name: CountPendingApprovalsForAgreement :one
SELECT count(*) FROM approvals
WHERE agreement_id = sqlc.arg('agreement_id')
  AND decision = 'pending';
