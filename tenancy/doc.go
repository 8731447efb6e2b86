// Package tenancy is the vocabulary every other bulkhead package shares: tenant
// IDs and their validation, opaque tenant keys and the database names derived
// from them, the Tenant record and its lifecycle status, context helpers, and
// the sentinel and typed errors callers match with errors.Is and errors.As.
//
// It depends on nothing else in the module, so applications can import it in
// their domain code without pulling in pgx.
//
// # Tenant IDs and keys
//
// A tenant's ID is what the business uses to name it: a brand slug such as
// "acme-brands" or a UUID. IDs are validated by [ID.Validate] (1 to 63 bytes of
// lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter or
// digit) and are never spliced into SQL nor used as a schema or role name.
//
// Each tenant also gets an opaque [Key]: 26 random base32 characters assigned at
// provisioning and recorded in the catalog. Schema and role names derive from
// the key through [Naming], so they always fit PostgreSQL's 63-byte identifier
// limit whatever the ID looks like.
//
// # Errors
//
// Errors a caller can cause map onto a small set of sentinels: [ErrInvalidID],
// [ErrNoTenant], [ErrNotFound], [ErrExists], [ErrSuspended], [ErrArchived],
// [ErrDeleted], [ErrNotActive], [ErrBusy] and [ErrRetentionExpired]. Typed errors
// ([InvalidIDError], [NotFoundError], [StatusError], [BusyError]) carry the data
// and match their sentinels through their Is methods:
//
//	conn, err := r.Acquire(ctx, id)
//	switch {
//	case errors.Is(err, tenancy.ErrNotFound):
//		// 404
//	case errors.Is(err, tenancy.ErrSuspended):
//		// 403 with "tenant suspended"
//	}
package tenancy
