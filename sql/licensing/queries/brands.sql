-- name: CreateBrand :one
-- New brands start 'active'. Names are unique per tenant regardless of case
-- (brands_name_lower_key): a duplicate is a unique violation (23505).
INSERT INTO brands (name, description)
VALUES (sqlc.arg('name'), sqlc.narg('description'))
RETURNING *;

-- name: GetBrand :one
SELECT * FROM brands
WHERE id = sqlc.arg('id');

-- name: ListBrands :many
-- status and name_prefix are optional (NULL = no filter); name_prefix matches
-- case-insensitively and literally (no LIKE wildcards). Pages by limit/offset
-- in a total order (lower(name), id), so pages are stable; CountBrands takes
-- the same filters and gives the total.
SELECT * FROM brands
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('name_prefix')::text IS NULL
       OR starts_with(lower(name), lower(sqlc.narg('name_prefix')::text)))
ORDER BY lower(name), id
LIMIT sqlc.arg('limit') OFFSET sqlc.arg('offset');

-- name: CountBrands :one
SELECT count(*) FROM brands
WHERE (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status')::text)
  AND (sqlc.narg('name_prefix')::text IS NULL
       OR starts_with(lower(name), lower(sqlc.narg('name_prefix')::text)));

-- name: UpdateBrand :one
-- Full replacement of the mutable fields (PUT semantics).
UPDATE brands
SET name        = sqlc.arg('name'),
    description = sqlc.narg('description'),
    status      = sqlc.arg('status'),
    updated_at  = now()
WHERE id = sqlc.arg('id')
RETURNING *;

-- name: DeleteBrand :execrows
-- Fails with a foreign-key violation while agreements reference the brand;
-- retire it instead. Returns 0 when no such brand.
DELETE FROM brands
WHERE id = sqlc.arg('id');
