-- name: CreateLicensee :one
-- New licensees start 'active'. Names are unique per tenant regardless of case.
INSERT INTO licensees (name, contact_email, country)
VALUES (sqlc.arg('name'), sqlc.arg('contact_email'), sqlc.arg('country'))
RETURNING *;

-- name: GetLicensee :one
SELECT * FROM licensees
WHERE id = sqlc.arg('id');

-- name: ListLicensees :many
-- status, country and name_prefix are optional (NULL = no filter); paging and
-- order as ListBrands, total from CountLicensees.
SELECT * FROM licensees
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('country')::text IS NULL OR country = sqlc.narg('country')::text)
  AND (sqlc.narg('name_prefix')::text IS NULL
       OR starts_with(lower(name), lower(sqlc.narg('name_prefix')::text)))
ORDER BY lower(name), id
LIMIT sqlc.arg('limit') OFFSET sqlc.arg('offset');

-- name: CountLicensees :one
SELECT count(*) FROM licensees
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('country')::text IS NULL OR country = sqlc.narg('country')::text)
  AND (sqlc.narg('name_prefix')::text IS NULL
       OR starts_with(lower(name), lower(sqlc.narg('name_prefix')::text)));

-- name: UpdateLicensee :one
-- Full replacement of the mutable fields (PUT semantics).
UPDATE licensees
SET name          = sqlc.arg('name'),
    contact_email = sqlc.arg('contact_email'),
    country       = sqlc.arg('country'),
    status        = sqlc.arg('status'),
    updated_at    = now()
WHERE id = sqlc.arg('id')
RETURNING *;

-- name: DeleteLicensee :execrows
-- Fails with a foreign-key violation while agreements reference the licensee.
DELETE FROM licensees
WHERE id = sqlc.arg('id');
