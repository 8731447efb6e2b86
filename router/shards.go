package router

// Gateway shards (SessionRole and TxLocal).
//
// With Config.GatewayShards = N > 1 the tenants are split over N gateway
// logins, "<gateway>_s<i>" (tenancy.GatewayShardRole, where <gateway> is the
// user of the router's DSN), each a member of the runtime roles of its own
// tenants only: tenant key k belongs to shard tenancy.ShardOf(k, N), the
// same function provision.Config.GatewayShards uses to grant memberships.
// PostgreSQL computes and caches a session user's role memberships on the
// first SET ROLE of each backend, and again on every backend after any
// GRANT or REVOKE of a membership; with shards that work is bounded by the
// shard's size instead of the number of tenants, and so is the catalog
// cache a backend builds for the tenants it serves.
//
// The router keeps one pgxpool per shard and cluster, created on first use,
// configured like the shared pool with the shard login as user and the same
// password. The pools are managed exactly like TenantLogin's tenant pools
// (tenantlogin.go, budget.go), with a shard in place of a tenant: one
// connection budget (Config.MaxConns) counted per connection from the dial
// until the server has closed it; a shard with connections grows only while
// more than a tenth of the budget is free, else waits for one of its own; a
// shard with none waits in FIFO order and makes room by closing a surplus
// idle connection, else the least recently used idle shard pool; pools
// unused for PoolIdleTimeout are closed. Per-tenant caps stay the router's
// slots (MaxConnsPerTenant). The catalog lookups still run as the gateway
// itself, on their own pool of at most two connections, outside the budget.
//
// A tenant whose runtime role was granted to another shard's login (a
// provisioner with another shard count, a hand-made grant) cannot be
// served: PostgreSQL refuses the switch, and the checkout fails with an
// error matching ErrRoleRefused, without a connection.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// ErrRoleRefused is matched by the error of a checkout that PostgreSQL
// refused to switch to a tenant the catalog says is active: the login the
// connection runs as is not a member of the tenant's runtime role. With
// gateway shards the usual cause is a router and a provisioner that
// disagree on GatewayShards (provision.Provisioner.Reshard repairs the
// memberships). The error also wraps the server's *pgconn.PgError
// (SQLSTATE 42501).
var ErrRoleRefused = errors.New("router: the database refused the tenant's role to this gateway login")

// newShardPools prepares the gateway shards' pools, on the machinery of
// TenantLogin's pools (tenantlogin.go): the same budget, FIFO waits,
// eviction of idle connections and pools, and reaping after
// PoolIdleTimeout. It opens nothing; r.pool and r.clusters must exist.
func newShardPools(r *Router) *loginPools {
	bases := map[string]*pgxpool.Config{r.cfg.Cluster: shardBase(r, r.pool.Config())}
	for name, p := range r.clusters {
		bases[name] = shardBase(r, p.Config())
	}
	return newPools(r, bases, r.cfg.GatewayShards)
}

// shardBase is the template of the shard pools on one cluster: the shared
// pool's configuration, hooks included (the router's per-connection state,
// no statement cache), with the sizing of tenant pools.
func shardBase(r *Router, pc *pgxpool.Config) *pgxpool.Config {
	pc.MinConns, pc.MinIdleConns = 0, 0
	pc.MaxConnIdleTime = r.cfg.PoolIdleTimeout
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > r.cfg.AcquireTimeout {
		// Bounds a dial that waits for the budget after its acquirer gave up
		// (pgxpool finishes constructing connections it started).
		pc.ConnConfig.ConnectTimeout = r.cfg.AcquireTimeout
	}
	if pc.ConnConfig.DialFunc == nil {
		pc.ConnConfig.DialFunc = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	return pc
}

// newShardPool builds the pool named name (poolName) of t's gateway shard on
// t's cluster: the shared pool's configuration with the shard login as user.
func (lp *loginPools) newShardPool(t *tenancy.Tenant, name string) (*tenantPool, error) {
	cluster := t.Cluster
	if cluster == "" {
		cluster = lp.r.cfg.Cluster
	}
	base, ok := lp.bases[cluster]
	if !ok {
		return nil, unknownCluster(t, lp.r.cfg)
	}
	shard := tenancy.ShardOf(t.Key, lp.shards)
	login := tenancy.GatewayShardRole(base.ConnConfig.User, shard, lp.shards)
	limit := lp.budget.max
	tp := &tenantPool{name: name, login: login, limit: limit, sem: make(chan struct{}, limit), released: make(chan struct{})}
	pc := base.Copy()
	pc.ConnConfig.User = login
	pc.MaxConns = int32(limit)
	pc.ConnConfig.DialFunc = lp.dialer(tp, base.ConnConfig.DialFunc)
	after := pc.AfterConnect
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		// Reported at login: checking costs no round trip.
		if su := conn.PgConn().ParameterStatus("session_authorization"); su != login {
			return fmt.Errorf("router: gateway shard %d logged in as %q, want %q", shard, su, login)
		}
		return after(ctx, conn)
	}
	// No I/O: MinConns is 0.
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("router: creating the pool of gateway shard %d (%q) on cluster %q: %w", shard, login, cluster, err)
	}
	tp.pool = p
	return tp, nil
}

// ShardStat returns a snapshot of the gateway shards' pools (the zero value
// without gateway shards): Pools counts the shard pools open (one per shard
// and cluster, opened on first use, closed after PoolIdleTimeout unused or
// to make room in the budget), Budget is Config.MaxConns, and Conns and
// MaxConns count connections now and at most since New, as the server sees
// them; neither ever exceeds Budget.
func (r *Router) ShardStat() TenantPoolStat { return r.shards.stat() }
