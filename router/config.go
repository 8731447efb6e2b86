package router

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Mode is how a router scopes connections to a tenant. See the package
// documentation for what each mode protects against.
type Mode int

const (
	// SessionRole (the default) switches a pooled gateway connection to the
	// tenant's role and schema for the whole checkout, and resets everything the
	// previous tenant left when the connection changes tenant.
	SessionRole Mode = iota
	// TxLocal scopes role and schema with SET LOCAL inside a transaction that
	// begins in the same round trip. Only transactions are handed out (Begin,
	// InTx), which makes it safe behind transaction-pooling proxies.
	TxLocal
	// TenantLogin logs in as each tenant's own login role, from a pool per
	// active tenant under a global connection budget (see tenantlogin.go).
	// The session user belongs to one tenant only, so even SQL the tenant
	// writes cannot reach another tenant. Needs Config.Credentials and
	// tenants provisioned with login roles (provision.Config.Credentials).
	TenantLogin
)

func (m Mode) String() string {
	switch m {
	case SessionRole:
		return "SessionRole"
	case TxLocal:
		return "TxLocal"
	case TenantLogin:
		return "TenantLogin"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Config configures a Router. A nil *Config means all defaults.
type Config struct {
	// Mode is the isolation mode. Default: SessionRole.
	Mode Mode
	// Catalog tells the router where a tenant lives and whether it is active.
	// Default: the control schema's route_tenant function, called as the
	// gateway on a separate pool of at most two connections.
	Catalog Catalog
	// ControlSchema is where the default catalog finds route_tenant.
	// Default: "bulkhead".
	ControlSchema string
	// StatusTTL bounds how stale a cached tenant record may be: a suspension
	// or deletion takes effect in this router within StatusTTL (the database
	// refuses new role switches at once). Default: 1s.
	StatusTTL time.Duration
	// StatusCacheSize bounds the number of cached tenant records. Default: 100000.
	StatusCacheSize int
	// MaxConnsPerTenant caps one tenant's concurrent checkouts, so one tenant
	// cannot starve the pool; a tenant's Limits.MaxConns overrides it.
	// Default: half the pool (TenantLogin: half of MaxConns), at least 1.
	MaxConnsPerTenant int
	// AcquireTimeout bounds the wait for a tenant slot and a pooled
	// connection when ctx has no earlier deadline. Default: 5s.
	AcquireTimeout time.Duration
	// StatementTimeout is applied to every tenant's connections unless the
	// tenant's Limits.StatementTimeout overrides it. Default: 0, meaning no
	// timeout. The router sets it explicitly on every switch, so it replaces
	// a statement_timeout configured on the database or the gateway role (the
	// reset between tenants would lose that anyway): set the deployment-wide
	// value here.
	StatementTimeout time.Duration
	// Affinity is how many idle connections the router keeps out of the
	// pool, each filed under the tenant its session serves, so that the
	// tenant's next checkout gets a connection that needs no switch (and, in
	// TxLocal, no reset). A checkout that finds none for its tenant and an
	// exhausted pool takes the least recently used parked connection. Parked
	// connections count as acquired in Stat().Pool and skip the pool's idle
	// health checks until they are used again. When every connection is
	// checked out, waiting checkouts queue in the router, and a released
	// connection goes to a waiter of the tenant it serves before older
	// waiters of other tenants, for at most 25 ms of extra wait per checkout:
	// fewer switches under skewed load, at some cost in tail latency (see
	// docs/BENCHMARKS.md). -1 means the pool's MaxConns.
	// Default: 0, none (every idle connection stays in the pool).
	Affinity int
	// StatementCacheSize bounds, per gateway connection, the prepared
	// statements DB keeps: one per tenant and SQL text, so that a statement
	// is planned once under its tenant's search_path and never re-planned
	// for another tenant (see stmtcache.go). Each costs the server a few
	// kilobytes of backend memory (docs/BENCHMARKS.md). -1 disables the
	// cache: DB then sends unnamed statements, as it must behind a
	// transaction-pooling proxy that does not track prepared statements
	// (TxLocal behind PgBouncer before 1.21). Default: 256.
	StatementCacheSize int
	// Tracer receives acquire events, and release and query events when it
	// also implements ReleaseTracer or QueryTracer. Default: none.
	Tracer Tracer
	// ConfigurePool, when set, may adjust the pool configuration parsed from the
	// DSN (sizes, lifetimes) before the router installs its hooks. The router
	// owns AfterConnect, PrepareConn, BeforeClose and the connection Tracer;
	// ConfigurePool must not set them.
	ConfigurePool func(*pgxpool.Config)

	// Cluster names the cluster the DSN given to New leads to: the primary,
	// which holds the catalog. Tenants whose catalog record names it are
	// served there. Default: "default" (provision.Config.Cluster's default).
	Cluster string
	// Clusters maps the names of other clusters to the gateway DSN on each
	// (see cluster.go). Default: none.
	Clusters map[string]string

	// GatewayShards, when above 1, serves SessionRole and TxLocal tenants
	// from that many gateway logins, "<DSN user>_s<i>", one pool each, all
	// logging in with the DSN's password and sharing the MaxConns budget
	// (see shards.go). It must equal provision.Config.GatewayShards. It
	// cannot be combined with Affinity; TenantLogin mode ignores it.
	// Default: 0, every tenant served by the DSN's user (as 1).
	GatewayShards int

	// The fields below apply to TenantLogin mode only, except MaxConns,
	// which is also the budget of the gateway shards' pools.

	// Credentials gives the password of each tenant's login role; the
	// provisioner must use the same (provision.Config.Credentials). Required
	// in TenantLogin mode.
	Credentials tenancy.Credentials
	// MaxConns is the global connection budget: the most connections open
	// at once across all tenant pools (TenantLogin) or all gateway shard
	// pools (GatewayShards > 1), counted until the server has closed them.
	// Default: the DSN's pool_max_conns (pgxpool's default otherwise).
	MaxConns int
	// PoolIdleTimeout closes a tenant's pool, and its connections, once it
	// has served no checkout for this long. Default: 1 minute.
	PoolIdleTimeout time.Duration
}

// WithDefaults returns a copy of c with every zero field set to its default;
// poolMax is the pool's MaxConns.
func (c *Config) withDefaults(poolMax int32) *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Cluster == "" {
		out.Cluster = "default"
	}
	if out.ControlSchema == "" {
		out.ControlSchema = "bulkhead"
	}
	if out.StatusTTL == 0 {
		out.StatusTTL = time.Second
	}
	if out.StatementCacheSize == 0 {
		out.StatementCacheSize = 256
	}
	if out.StatusCacheSize == 0 {
		out.StatusCacheSize = 100_000
	}
	if out.MaxConns == 0 {
		out.MaxConns = int(poolMax)
	}
	if out.MaxConnsPerTenant == 0 {
		capacity := int(poolMax)
		if out.Mode == TenantLogin {
			capacity = out.MaxConns
		}
		out.MaxConnsPerTenant = max(1, capacity/2)
	}
	if out.PoolIdleTimeout == 0 {
		out.PoolIdleTimeout = time.Minute
	}
	if out.Affinity == -1 {
		out.Affinity = int(poolMax)
	}
	if out.AcquireTimeout == 0 {
		out.AcquireTimeout = 5 * time.Second
	}
	return &out
}

func (c *Config) validate() error {
	switch {
	case c.Mode != SessionRole && c.Mode != TxLocal && c.Mode != TenantLogin:
		return fmt.Errorf("router: Config.Mode %v is not supported", c.Mode)
	case c.Mode == TenantLogin && c.Credentials == nil:
		return fmt.Errorf("router: Config.Credentials is required in TenantLogin mode")
	case c.MaxConns < 0:
		return fmt.Errorf("router: Config.MaxConns is negative")
	case c.PoolIdleTimeout < 0:
		return fmt.Errorf("router: Config.PoolIdleTimeout is negative")
	case c.StatusTTL < 0:
		return fmt.Errorf("router: Config.StatusTTL is negative")
	case c.StatusCacheSize < 0:
		return fmt.Errorf("router: Config.StatusCacheSize is negative")
	case c.StatementCacheSize < -1:
		return fmt.Errorf("router: Config.StatementCacheSize is negative (other than -1)")
	case c.MaxConnsPerTenant < 0:
		return fmt.Errorf("router: Config.MaxConnsPerTenant is negative")
	case c.Affinity < 0:
		return fmt.Errorf("router: Config.Affinity is negative (other than -1)")
	case c.GatewayShards < 0 || c.GatewayShards > tenancy.MaxGatewayShards:
		return fmt.Errorf("router: Config.GatewayShards is %d; must be 0 to %d", c.GatewayShards, tenancy.MaxGatewayShards)
	case c.GatewayShards > 1 && c.Affinity > 0 && c.Mode != TenantLogin:
		return fmt.Errorf("router: Config.Affinity cannot be combined with Config.GatewayShards")
	case c.AcquireTimeout < 0:
		return fmt.Errorf("router: Config.AcquireTimeout is negative")
	case c.StatementTimeout < 0:
		return fmt.Errorf("router: Config.StatementTimeout is negative")
	}
	return nil
}
