package provision

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DefaultRetention is how long a soft-deleted tenant's data is kept.
const DefaultRetention = 30 * 24 * time.Hour

// Config configures a Provisioner. A nil *Config means all defaults.
type Config struct {
	// ControlSchema is the schema holding the catalog and audit log.
	// Default: "bulkhead".
	ControlSchema string
	// Naming sets the prefix of every role and schema name. Default prefix: "bh".
	Naming tenancy.Naming
	// GatewayRole is the login role of the request path, granted membership in
	// each active tenant's runtime role. Default: "<prefix>_gateway".
	GatewayRole string
	// GatewayShards, when above 1, splits the request path over that many
	// gateway logins, "<GatewayRole>_s<i>" for i in [0, GatewayShards)
	// (tenancy.GatewayShardRole), each hardened like the gateway and made a
	// member of only the runtime roles of its own tenants: tenant key k goes
	// to shard tenancy.ShardOf(k, GatewayShards). It bounds what each
	// backend computes and caches about role memberships by the shard's
	// size instead of the number of tenants (see shard.go). GatewayRole
	// itself then keeps only the catalog lookup (route_tenant). Give the
	// routers the same number (router.Config.GatewayShards); changing it
	// needs Reshard. Default: 0, one gateway (as 1).
	GatewayShards int
	// Migrations holds the tenant migrations (NNNN_name.up.sql files at its
	// root) that Create applies to every new tenant. Default: none, tenants get
	// an empty schema.
	Migrations fs.FS
	// Retention is how long Delete keeps a tenant's data. Default: DefaultRetention.
	Retention time.Duration
	// Cluster names the cluster of the admin pool given to New: the primary,
	// which holds the catalog. It is recorded on the tenants placed there.
	// Default: "default".
	Cluster string
	// Clusters adds other clusters, by name, with an admin pool on each (the
	// same roles and database set up as on the primary; Init hardens each).
	// New tenants are spread over the primary and these by Placement.
	// Default: none, every tenant on the primary.
	Clusters map[string]*pgxpool.Pool
	// Placement picks the cluster of each new tenant when Clusters is set.
	// Default: LeastTenants.
	Placement Placement
	// PurgeBatch is how many tables Purge drops per transaction, so purging a
	// schema with thousands of objects never exhausts max_locks_per_transaction.
	// Default: 100.
	PurgeBatch int
	// MigrationLockTimeout bounds lock waits while migrating. Default: 5s.
	MigrationLockTimeout time.Duration

	// Credentials, when set, makes every tenant also get a LOGIN role
	// (Naming.LoginRole) for the router's TenantLogin mode, with the password
	// these Credentials give (see login.go): created by Create, disabled
	// (NOLOGIN) by Suspend, Archive and Delete, enabled by Activate and
	// Restore, dropped by Purge. Give the router the same Credentials.
	// Default: nil, no login roles (SessionRole and TxLocal need none).
	Credentials tenancy.Credentials
	// NoGatewayMembership, when true, never makes the gateway a member of
	// tenant runtime roles (and EnsureLogin takes such memberships away),
	// for deployments whose routers all run TenantLogin: the gateway then
	// only calls route_tenant, and its password opens no tenant. SessionRole
	// and TxLocal routers cannot serve such tenants. Default: false.
	NoGatewayMembership bool
}

// WithDefaults returns a copy of c with every zero field set to its default.
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
	if out.GatewayRole == "" {
		out.GatewayRole = out.Naming.Prefix + "_gateway"
	}
	if out.Retention == 0 {
		out.Retention = DefaultRetention
	}
	if out.Cluster == "" {
		out.Cluster = "default"
	}
	if out.Placement == nil {
		out.Placement = LeastTenants{}
	}
	if out.PurgeBatch == 0 {
		out.PurgeBatch = 100
	}
	if out.MigrationLockTimeout == 0 {
		out.MigrationLockTimeout = 5 * time.Second
	}
	return &out
}

func (c *Config) validate() error {
	if err := c.Naming.Validate(); err != nil {
		return fmt.Errorf("provision: Config.Naming: %w", err)
	}
	for field, v := range map[string]string{"ControlSchema": c.ControlSchema, "GatewayRole": c.GatewayRole, "Cluster": c.Cluster} {
		if len(v) > 63 {
			return fmt.Errorf("provision: Config.%s %q is longer than 63 bytes", field, v)
		}
	}
	for name, pool := range c.Clusters {
		if name == "" || len(name) > 63 || name == c.Cluster || pool == nil {
			return fmt.Errorf("provision: Config.Clusters[%q]: names must be 1 to 63 bytes, differ from Config.Cluster %q, and have an admin pool", name, c.Cluster)
		}
	}
	if err := tenancy.ValidateGatewayShards(c.GatewayRole, c.GatewayShards); err != nil {
		return fmt.Errorf("provision: Config.GatewayShards: %w", err)
	}
	if c.Retention < 0 {
		return fmt.Errorf("provision: Config.Retention is negative")
	}
	if c.PurgeBatch < 1 {
		return fmt.Errorf("provision: Config.PurgeBatch must be >= 1")
	}
	return nil
}
