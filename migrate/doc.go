// Package migrate applies versioned SQL migrations to tenant schemas.
//
// # Files
//
// Migrations are plain SQL files named NNNN_name.up.sql, with an optional
// NNNN_name.down.sql beside each, read from an fs.FS the caller supplies (so a
// program can embed its own with go:embed). Versions are positive integers;
// gaps are allowed, duplicates are not. Each up file is checksummed (SHA-256):
// an applied migration whose file later changed is reported as a
// *ChecksumError, never silently re-run.
//
// # Applying to one schema
//
// ApplyTx runs the pending up migrations of one schema inside the caller's
// transaction: it pins search_path to "<schema>, pg_temp", optionally switches
// to the role that must own the objects (SET LOCAL ROLE), takes a transaction
// advisory lock keyed by the schema (never one global lock) and records each
// version in the schema's bulkhead_migrations table in the same transaction.
// Provisioning uses it to build a tenant inside the transaction that creates the
// tenant, so a failed migration leaves nothing behind.
package migrate
