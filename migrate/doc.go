// Package migrate applies versioned SQL migrations to tenant schemas: to one
// schema inside a caller's transaction (provisioning), and fanned out to
// thousands of tenants at once.
//
// # Files
//
// Migrations are plain SQL files named NNNN_name.up.sql, with an optional
// NNNN_name.down.sql beside each, read from an fs.FS the caller supplies (so a
// program can embed its own with go:embed, or the CLI can read a directory
// with os.DirFS). Versions are positive integers; gaps are allowed, duplicates
// are not. Each up file is checksummed (SHA-256): an applied migration whose
// file later changed is reported as a *ChecksumError, never silently re-run.
// A file whose first line is NoTransactionDirective runs outside a
// transaction (CREATE INDEX CONCURRENTLY).
//
// # Applying to one schema
//
// ApplyTx runs the pending up migrations of one schema inside the caller's
// transaction: it pins search_path to "<schema>, pg_temp", optionally switches
// to the role that must own the objects (SET LOCAL ROLE), takes a transaction
// advisory lock keyed by the schema (LockKey; never one global lock) and
// records each version in the schema's bulkhead_migrations table in the same
// transaction. Provisioning uses it to build a tenant inside the transaction
// that creates the tenant, so a failed migration leaves nothing behind. It
// plans with the same code as the fan-out (checksum verification,
// out-of-order detection).
//
// # Fanning out
//
// A Migrator (New) runs over the admin pool that provision.Init ran as:
//
//	m, err := migrate.New(admin, os.DirFS("migrations"), &migrate.Config{
//		Progress: func(p migrate.Progress) { log.Printf("%d/%d", p.Done, p.Total) },
//	})
//	res, err := m.Up(ctx, &migrate.RunOpts{Canary: 10, ErrorBudget: 50})
//	var pe *migrate.PartialError
//	if errors.As(err, &pe) {
//		// pe.Failed: tenant -> error (with SQLSTATE); pe.Succeeded; res.Tenants
//	}
//
// Up, Down, Plan, Status and Validate work on all tenants (active, suspended
// and archived by default), a Selection (statuses, ID prefix, predicate) or a
// named list. What each run does:
//
//   - One catalog query says who is behind: tenants whose catalog
//     schema_version is at their target are skipped without a lock.
//   - Tenants are migrated Parallelism at a time (default: sized for the
//     pool, at most 8), each migration of each tenant in its own transaction
//     that also writes the schema's bulkhead_migrations row, the catalog's
//     tenants.schema_version and the run's ledger row. A failed migration
//     leaves the tenant at its last committed version.
//   - Migrations run as the tenant owner role (Config.Naming), with
//     lock_timeout (Config.LockTimeout) so no tenant queues forever behind a
//     long transaction, under the schema's advisory lock, so two Migrators
//     (or two processes) never apply a migration twice.
//   - Failures do not stop the run (fail-continue) unless RunOpts.ErrorBudget
//     or FailFast says so. A canary phase (RunOpts.Canary or CanaryIDs) runs
//     first and, if any canary fails, the rest is not started.
//   - Every tenant's outcome (migrations applied, duration, error with
//     SQLSTATE) is returned in the RunResult and persisted in the ledger
//     (tables migration_runs and migration_results of the control schema; see
//     Migrator.Ledger). Partial failure returns a *PartialError.
//   - An interrupted or crashed run is continued with RunOpts.Resume (its run
//     id): tenants done are at target and skipped, failed or unfinished ones
//     are tried again, under the same id. A plain new run retries failed
//     tenants too, since they are still behind.
//
// # How one step runs
//
// One migration of one tenant is one simple-protocol query, one round trip:
// BEGIN, SET LOCAL ROLE/search_path/lock_timeout, the schema's advisory lock,
// a guard that fails unless the schema's applied versions are exactly what the
// catalog implies, the migration, the version row, then (back as the admin, on
// the control schema) the catalog update and the ledger row, COMMIT. The
// control-plane statements are the sqlc-generated queries with their
// arguments inlined as literals. When the guard fails (stale catalog, a
// concurrent migrator, an edited file) the transaction rolls back and the
// tenant is re-planned from the versions read under the lock, which also
// detects checksum drift and out-of-order migrations.
//
// # Several clusters
//
// The catalog and the ledger live on the primary cluster, the one of the
// admin pool given to New (Config.Cluster, default "default"). Tenants
// placed on other clusters (provision.Config.Clusters) are migrated there
// when Config.Clusters has an admin pool for their cluster; a tenant whose
// cluster is unknown fails with an *UnknownClusterError and the run goes on.
// Such a tenant's step runs as above on its own cluster, advisory lock
// included, without the control-plane statements; once it has committed,
// the catalog update and the ledger row are written on the primary in a
// short transaction of their own. A crash between the two commits leaves the
// catalog behind the schema (ahead of it, going down). The version table is
// the truth: the next run in the same direction plans from the catalog, the
// guard fails, the versions are read under the lock, and the catalog is set
// from them (TenantResult.CatalogRepaired) without applying anything again.
// Validate reports the lag meanwhile as a "catalog" problem. Parallelism is
// sized from the primary's pool; give the other clusters' pools at least as
// many connections, or workers wait for one.
//
// # Tenant-specific migrations
//
// Config.Extra gives a tenant (or a group of tenants) extra migrations, merged
// with the common ones into one version sequence. Versions must not collide
// (a collision is an error naming both files); timestamp versions keep both
// sets in the order they were written. The catalog's schema_version is the
// highest applied version of the merged sequence.
package migrate
