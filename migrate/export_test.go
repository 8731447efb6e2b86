package migrate

import "github.com/bulkhead-go/bulkhead/tenancy"

// SetAfterStep makes m call f after each migration's SQL ran and before its
// transaction commits. Tests only.
func SetAfterStep(m *Migrator, f func(tenant tenancy.ID, version int64)) { m.afterStep = f }
