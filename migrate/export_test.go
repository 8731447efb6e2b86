package migrate

import "github.com/bulkhead-go/bulkhead/tenancy"

// SetBeforeStep makes m call f right before each migration step is sent to
// the database. Tests only.
func SetBeforeStep(m *Migrator, f func(tenant tenancy.ID, version int64)) { m.beforeStep = f }

// Inline exposes inline (the literal inlining of the step's sqlc query).
var Inline = inline

// Replans returns how many steps m re-planned (guard failures and reads).
func Replans(m *Migrator) int64 { return m.replans.Load() }

// SetAfterRemoteCommit makes m call f after a step committed on a tenant's
// other cluster, before the catalog records it; an error from f stands for a
// crash in between. Tests only.
func SetAfterRemoteCommit(m *Migrator, f func(tenant tenancy.ID, version int64) error) {
	m.afterRemoteCommit = f
}
