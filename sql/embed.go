// Package sql holds the SQL that is data rather than Go: bulkhead's control-plane
// schema and the example brand-licensing tenant schema, as migration files
// embedded for the packages and programs that apply them.
//
// The sqlc query files beside them are inputs to code generation only
// (see sqlc.yaml at the repository root); they are not embedded.
package sql

import (
	"embed"
	"io/fs"
)

//go:embed control/migrations/*.sql
var control embed.FS

// ControlMigrations returns the control-plane migrations (the catalog, the
// audit log, the routing function), applied by provision.Init.
func ControlMigrations() fs.FS {
	sub, err := fs.Sub(control, "control/migrations")
	if err != nil {
		panic(err) // the path is a compile-time constant
	}
	return sub
}

//go:embed licensing/migrations/*.sql
var licensing embed.FS

// LicensingMigrations returns the example brand-licensing tenant migrations
// (brands, licensees, agreements, approvals) used by examples/licensing and by
// tests.
func LicensingMigrations() fs.FS {
	sub, err := fs.Sub(licensing, "licensing/migrations")
	if err != nil {
		panic(err)
	}
	return sub
}
