package migrate

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DefaultLockTimeout bounds how long a migration statement waits for a lock.
const DefaultLockTimeout = 5 * time.Second

// Config configures a Migrator. A nil *Config means all defaults.
type Config struct {
	// ControlSchema is the schema holding the catalog and the migration ledger
	// (as in provision.Config). Default: "bulkhead".
	ControlSchema string
	// Naming sets the prefix of the tenant owner role the migrations run as (as
	// in provision.Config). Default prefix: "bh".
	Naming tenancy.Naming
	// Parallelism is how many tenants are migrated at once. Default: the admin
	// pool's MaxConns minus one (one connection stays free for the ledger),
	// at most 8, at least 1. More than the database server's cores rarely
	// helps: DDL is CPU- and catalog-bound.
	Parallelism int
	// LockTimeout bounds every lock wait of a migration (lock_timeout), so a
	// migration never queues forever behind a long tenant transaction; a
	// tenant that times out fails with SQLSTATE 55P03 and is retried by the
	// next run. Default: DefaultLockTimeout.
	LockTimeout time.Duration
	// Cluster names the cluster of the admin pool given to New: the primary,
	// which holds the catalog and the ledger (as in provision.Config).
	// Default: "default".
	Cluster string
	// Clusters adds the admin pools of other clusters, by name (as in
	// provision.Config.Clusters). A tenant whose catalog row names one of
	// them is migrated there; a tenant whose cluster is neither Cluster nor a
	// key of Clusters fails with an *UnknownClusterError. Default: none.
	Clusters map[string]*pgxpool.Pool
	// Extra, when set, returns tenant t's tenant-specific migrations: a group
	// name (tenants of one group share one file set, loaded once) and its
	// files, or a nil fs.FS for none. t carries ID, Key, Status, Schema,
	// Cluster and SchemaVersion.
	//
	// The extra migrations are merged with the common ones into one sequence
	// ordered by version, so versions must not collide: a version used by
	// both sets is an error naming both files. Use timestamp versions
	// (20260127093000_add_x.up.sql) in both sets, so that a migration written
	// later always sorts later; a migration whose version is below one a
	// tenant already has is reported as out of order, never silently skipped.
	// Default: none.
	Extra func(t *tenancy.Tenant) (group string, fsys fs.FS)
	// Progress, when set, is called after every tenant a run processes, one
	// call at a time. It must return quickly. Default: none.
	Progress func(Progress)
}

// WithDefaults returns a copy of c with every zero field set to its default
// (Parallelism stays 0 here: New sizes it from the pool).
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.ControlSchema == "" {
		out.ControlSchema = "bulkhead"
	}
	if out.Naming.Prefix == "" {
		out.Naming.Prefix = tenancy.DefaultPrefix
	}
	if out.Cluster == "" {
		out.Cluster = "default"
	}
	if out.LockTimeout == 0 {
		out.LockTimeout = DefaultLockTimeout
	}
	return &out
}

func (c *Config) validate() error {
	if err := c.Naming.Validate(); err != nil {
		return fmt.Errorf("migrate: Config.Naming: %w", err)
	}
	if len(c.ControlSchema) > 63 {
		return fmt.Errorf("migrate: Config.ControlSchema %q is longer than 63 bytes", c.ControlSchema)
	}
	if c.Parallelism < 0 {
		return fmt.Errorf("migrate: Config.Parallelism is %d, must be >= 0 (0 means sized for the pool)", c.Parallelism)
	}
	for name, pool := range c.Clusters {
		if name == "" || name == c.Cluster || pool == nil {
			return fmt.Errorf("migrate: Config.Clusters[%q]: names must be non-empty, differ from Config.Cluster %q, and have an admin pool", name, c.Cluster)
		}
	}
	if c.LockTimeout < time.Millisecond {
		return fmt.Errorf("migrate: Config.LockTimeout is %s, must be at least 1ms", c.LockTimeout)
	}
	return nil
}
