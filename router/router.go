package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// ErrWrongMode is returned by Acquire on a TxLocal router: that mode hands out
// transactions only (Begin, InTx).
var ErrWrongMode = errors.New("router: Acquire needs SessionRole mode; in TxLocal mode use Begin or InTx")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("router: closed")

// Router hands out tenant-scoped connections from a shared pool of gateway
// connections. It is safe for concurrent use.
type Router struct {
	cfg     *Config
	pool    *pgxpool.Pool
	catPool *pgxpool.Pool // for the default catalog; nil with a custom Catalog
	catalog Catalog
	cache   *statusCache
	slots   *slots

	aff *affinity // nil without Config.Affinity
	// noSetConfig: the gateway may not execute set_config, so DB's
	// pipelined switch uses SET statements (oneshot.go).
	noSetConfig atomic.Bool

	relTracer   ReleaseTracer
	queryTracer QueryTracer

	logins   *loginPools              // TenantLogin mode only (tenantlogin.go)
	clusters map[string]*pgxpool.Pool // other clusters' shared pools (cluster.go)
	pooler   poolerCheck              // SessionRole's pooler detection (pooler.go)
	shards   *loginPools              // Config.GatewayShards > 1 (shards.go)

	mu     sync.Mutex
	conns  map[*pgx.Conn]*connState
	closed bool
	once   sync.Once
}

// connState is what the router knows about one pooled connection.
type connState struct {
	gateway string // session_user, from the server's ParameterStatus
	// key and version identify the tenant and catalog version the session is
	// switched to (SessionRole) or last served (TxLocal); empty when fresh.
	key     tenancy.Key
	version time.Time
	tenant  tenancy.ID // for tracing
	// dirty says the session's state is unknown (a pipelined switch whose
	// outcome was not confirmed): the next checkout resets it, whatever tenant
	// it is for.
	dirty bool
	// clean says that since its last full reset the session has run only
	// the router's own statements and DB statements whose command tags show
	// they could change nothing but GUC values and advisory locks (see
	// trusted in oneshot.go). A clean session changes tenant with the light
	// reset (RESET ALL, RESET ROLE, pg_advisory_unlock_all) and keeps its
	// statement cache; any other checkout (Acquire, Begin, InTx) makes it
	// unclean until the next full reset.
	clean bool
	// stmts is DB's statement cache (stmtcache.go); nil when disabled.
	stmts *stmtCache
}

// New returns a router over a pool of connections to dsn, made as the gateway
// role. It opens no connection: the first Acquire does.
func New(ctx context.Context, dsn string, cfg *Config) (*Router, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("router: parsing DSN: %w", err)
	}
	return NewWithConfig(ctx, pc, cfg)
}

// NewWithConfig is New with an already parsed pool configuration.
func NewWithConfig(ctx context.Context, pc *pgxpool.Config, cfg *Config) (*Router, error) {
	pc = pc.Copy()
	if cfg != nil && cfg.ConfigurePool != nil {
		cfg.ConfigurePool(pc)
	}
	c := cfg.withDefaults(pc.MaxConns)
	if err := c.validate(); err != nil {
		return nil, err
	}
	r := &Router{cfg: c, conns: map[*pgx.Conn]*connState{}}
	r.cache = newStatusCache(c.StatusTTL, c.StatusCacheSize)
	r.slots = newSlots()
	r.relTracer, _ = c.Tracer.(ReleaseTracer)
	r.queryTracer, _ = c.Tracer.(QueryTracer)
	parsed, err := clusterConfigs(c)
	if err != nil {
		return nil, err
	}
	if c.Mode == TenantLogin {
		r.logins = newLoginPools(r, pc, parsed) // copies pc before the changes below
	}

	// pgx's statement and description caches are keyed by SQL text, and the
	// same text means another tenant's tables after a switch. With both
	// disabled, every query is one round trip of the extended protocol with no
	// named statement, and the reset's DEALLOCATE ALL leaves nothing stale on
	// either side: no statement prepared for (or planted by) one tenant can run
	// for another. Forced, whatever ConfigurePool set.
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pc.ConnConfig.StatementCacheCapacity = 0
	pc.ConnConfig.DescriptionCacheCapacity = 0
	if r.queryTracer != nil {
		pc.ConnConfig.Tracer = &pgxTracer{r: r}
	}
	pc.AfterConnect = r.afterConnect
	pc.BeforeClose = r.forget

	r.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("router: creating pool: %w", err)
	}
	if err := r.openClusters(ctx, pc, parsed); err != nil {
		r.pool.Close()
		return nil, err
	}
	if c.GatewayShards > 1 && c.Mode != TenantLogin {
		r.shards = newShardPools(r)
	}
	if c.Affinity > 0 {
		r.aff = newAffinity(r.pool, c.Affinity)
	}
	r.catalog = c.Catalog
	if r.catalog == nil {
		cc := pc.Copy()
		cc.MaxConns, cc.MinConns = 2, 0
		cc.AfterConnect, cc.BeforeClose, cc.ConnConfig.Tracer = r.checkGateway, nil, nil
		// Catalog connections never switch role, so caching the one statement is safe.
		cc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
		cc.ConnConfig.StatementCacheCapacity = 8
		if c.Mode == TxLocal {
			// TxLocal is the mode for transaction-mode poolers, where a named
			// statement prepared on one server connection is missing on the
			// next (pooler.go).
			cc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		if r.catPool, err = pgxpool.NewWithConfig(ctx, cc); err != nil {
			r.pool.Close()
			r.closeClusters()
			return nil, fmt.Errorf("router: creating catalog pool: %w", err)
		}
		r.catalog = &routeCatalog{pool: r.catPool, sql: "SELECT * FROM " + pgx.Identifier{c.ControlSchema, "route_tenant"}.Sanitize() + "($1)"}
	}
	return r, nil
}

// checkGateway refuses connections that would make isolation meaningless.
// The server reports both facts at login, so the check costs no round trip.
func (r *Router) checkGateway(_ context.Context, conn *pgx.Conn) error {
	if conn.PgConn().ParameterStatus("is_superuser") == "on" {
		return fmt.Errorf("router: the gateway role %q is a superuser; bulkhead refuses to route through it", conn.PgConn().ParameterStatus("session_authorization"))
	}
	return nil
}

func (r *Router) afterConnect(ctx context.Context, conn *pgx.Conn) error {
	if err := r.checkGateway(ctx, conn); err != nil {
		return err
	}
	r.mu.Lock()
	r.conns[conn] = r.newState(conn)
	r.mu.Unlock()
	return nil
}

// newState is what the router knows about a new connection: nothing has run
// on it yet.
func (r *Router) newState(conn *pgx.Conn) *connState {
	st := &connState{gateway: conn.PgConn().ParameterStatus("session_authorization"), clean: true}
	if r.cfg.StatementCacheSize > 0 {
		st.stmts = newStmtCache(r.cfg.StatementCacheSize)
	}
	return st
}

func (r *Router) forget(conn *pgx.Conn) {
	r.mu.Lock()
	delete(r.conns, conn)
	r.mu.Unlock()
}

func (r *Router) state(conn *pgx.Conn) *connState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.conns[conn]
	if !ok {
		st = r.newState(conn)
		r.conns[conn] = st
	}
	return st
}

// Mode returns the router's isolation mode.
func (r *Router) Mode() Mode { return r.cfg.Mode }

// Pool returns the underlying pool of gateway connections, for statistics.
// Connections taken from it directly are not tenant-scoped.
func (r *Router) Pool() *pgxpool.Pool { return r.pool }

// Close closes the pools. It is idempotent; connections checked out stay
// usable until released.
func (r *Router) Close() {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		if r.aff != nil {
			r.aff.drain()
		}
		r.pool.Close()
		r.closeClusters()
		if r.shards != nil {
			r.shards.close()
		}
		if r.logins != nil {
			r.logins.close()
		}
		if r.catPool != nil {
			r.catPool.Close()
		}
	})
}

// Stat is a snapshot of the router's state.
type Stat struct {
	Pool *pgxpool.Stat
	// CachedTenants is the number of tenant records in the status cache.
	CachedTenants int
	// BusyTenants is the number of tenants with at least one checkout.
	BusyTenants int
	// Parked is the number of idle connections kept for their tenant
	// (Config.Affinity); Pool counts them as acquired.
	Parked int
}

// Stat returns a snapshot of the router's state.
func (r *Router) Stat() Stat {
	st := Stat{Pool: r.pool.Stat(), CachedTenants: r.cache.len(), BusyTenants: r.slots.busy()}
	if r.aff != nil {
		st.Parked = r.aff.parkedLen()
	}
	return st
}

// Invalidate drops tenant id from the status cache, so the next checkout reads
// the catalog. Call it after a lifecycle change made in this process.
func (r *Router) Invalidate(id tenancy.ID) { r.cache.forget(id) }

// lookup returns tenant id's record if it is routable.
func (r *Router) lookup(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	now := time.Now()
	e, ok := r.cache.get(id, now)
	if !ok {
		t, err := r.catalog.Tenant(ctx, id)
		if err != nil && !errors.Is(err, tenancy.ErrNotFound) {
			return nil, connLost(err)
		}
		e = cacheEntry{t: t, err: err, at: now}
		r.cache.put(id, e)
	}
	if e.err != nil {
		return nil, e.err
	}
	if err := e.t.Routable(); err != nil {
		return nil, err
	}
	return e.t, nil
}

// checkout is the common part of Acquire and Begin: a routable tenant, a slot
// under its limit, and a pooled connection. The caller switches it.
func (r *Router) checkout(ctx context.Context, id tenancy.ID) (*Conn, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	t, err := r.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	// The earlier of the caller's deadline and AcquireTimeout bounds the wait.
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AcquireTimeout)
	defer cancel()
	limit := r.cfg.MaxConnsPerTenant
	if t.Limits.MaxConns > 0 {
		limit = t.Limits.MaxConns
	}
	start := time.Now()
	release, err := r.slots.acquire(ctx, t.Key, limit)
	if err != nil {
		return nil, &tenancy.BusyError{ID: id, Limit: limit, Waited: time.Since(start)}
	}
	if r.shards != nil {
		// The pool of t's gateway shard, under the budget (shards.go).
		pc, done, err := r.shards.checkout(ctx, t, start)
		if err != nil {
			release()
			return nil, err
		}
		return &Conn{r: r, pc: pc, tenant: t, st: r.state(pc.Conn()), slot: func() { done(); release() }}, nil
	}
	pool, err := r.poolFor(t) // cluster.go
	if err != nil {
		release()
		return nil, err
	}
	var pc *pgxpool.Conn
	viaAff := r.aff != nil && pool == r.pool // affinity covers the default cluster's pool
	if viaAff {
		pc, err = r.aff.acquire(ctx, t.Key)
	} else {
		pc, err = pool.Acquire(ctx)
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("router: acquiring a connection for tenant %q: %w", id, connLost(err))
	}
	return &Conn{r: r, pc: pc, tenant: t, st: r.state(pc.Conn()), slot: release, viaAff: viaAff}, nil
}

// timeoutFor returns the statement timeout for t.
func (r *Router) timeoutFor(t *tenancy.Tenant) time.Duration {
	if t.Limits.StatementTimeout > 0 {
		return t.Limits.StatementTimeout
	}
	return r.cfg.StatementTimeout
}

// switchFailed turns an error from the role switch into the most useful error:
// when the database refused the role, the tenant was most likely suspended or
// deleted since it was cached, so the catalog is asked again.
func (r *Router) switchFailed(ctx context.Context, id tenancy.ID, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege {
		r.cache.forget(id)
		if _, lerr := r.lookup(ctx, id); lerr != nil {
			return lerr
		}
		return fmt.Errorf("router: switching connection to tenant %q: %w: %w", id, ErrRoleRefused, err)
	}
	return fmt.Errorf("router: switching connection to tenant %q: %w", id, connLost(err))
}

// connLost marks errors that mean the connection broke, so callers can retry.
func connLost(err error) error {
	if err == nil || errors.Is(err, tenancy.ErrConnLost) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server ended the session (shutdown, terminate_backend, crash)
		// or the connection failed: class 08 and 57P0x, or a FATAL error.
		if pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC" || strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P0") {
			return fmt.Errorf("%w: %w", tenancy.ErrConnLost, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) {
		return fmt.Errorf("%w: %w", tenancy.ErrConnLost, err)
	}
	return err
}
