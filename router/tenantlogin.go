package router

// TenantLogin mode.
//
// Each active tenant gets its own pgxpool, lazily, whose connections log in
// as the tenant's login role (tenancy.Naming.LoginRole: a member of exactly
// the tenant's runtime role) with the password from Config.Credentials, and
// with search_path = <tenant schema>, pg_temp sent in the startup packet.
// The session user therefore belongs to one tenant: no SET ROLE, RESET ROLE,
// SET SESSION AUTHORIZATION or set_config('role', ...) can reach another
// tenant, and no reset is needed between checkouts because a pool never
// serves another tenant. pgx's statement cache stays on (per pool, so per
// tenant), which is where most of the mode's speed comes from.
//
// The pools share one connection budget (Config.MaxConns), counted per
// connection from the dial until the server has closed its end (budget.go).
// A checkout that needs a new connection reserves a token first, in FIFO
// order across tenants; when none is free the least recently used pool that
// serves no checkout is closed (or, failing that, idle connections of busy
// pools), and each release while others wait closes one more idle
// connection. A pool that served nothing for Config.PoolIdleTimeout is
// closed by a reaper. Per-tenant caps (Config.MaxConnsPerTenant or the
// tenant's Limits.MaxConns) and Config.AcquireTimeout bound every wait;
// running out of either gives a *tenancy.BusyError.

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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

// loginPools holds TenantLogin's pools, one per tenant, or, with the same
// budget, eviction and reaping, the pools of the gateway shards (shards.go),
// one per shard and cluster.
type loginPools struct {
	r      *Router
	bases  map[string]*pgxpool.Config // by cluster
	budget *budget
	idle   time.Duration
	// shards is the number of gateway shards when the pools are the
	// gateway shards' (shards.go), 0 in TenantLogin mode.
	shards int

	mu     sync.Mutex
	pools  map[string]*tenantPool // by poolName
	lru    list.List              // of *tenantPool; front: most recently used
	closed bool
	needy  int // budget waiters whose pool has no connection
	// freeing counts connections being closed to make room, whose tokens
	// have not come back yet; evictions stop while it covers needy.
	freeing int
	stop    chan struct{}
	reaper  sync.Once
	wg      sync.WaitGroup // pools being closed, the reaper

	created, evicted, reaped, trimmed, timeouts atomic.Int64
}

// tenantPool is one tenant's pool (or one gateway shard's on one cluster).
// Fields other than the immutable ones are guarded by loginPools.mu.
type tenantPool struct {
	name    string // the key in loginPools.pools
	key     tenancy.Key
	version time.Time
	login   string
	limit   int
	pool    *pgxpool.Pool
	sem     chan struct{} // per-tenant checkout cap

	refs     int           // checkouts and waiters; the pool is not closed while > 0
	inUse    int           // checkouts holding (or about to hold) a connection
	released chan struct{} // closed and replaced at every release
	open     int           // connections counted against the budget
	lastUsed time.Time
	elem     *list.Element // nil once removed from the map
	closing  bool
}

// newLoginPools prepares TenantLogin mode from the gateway's pool
// configuration, before the router changes it for the shared pool: host,
// port, database, TLS, timeouts and sizes apply to every tenant pool.
func newLoginPools(r *Router, pc *pgxpool.Config, clusters map[string]*pgxpool.Config) *loginPools {
	bases := map[string]*pgxpool.Config{r.cfg.Cluster: loginBase(r, pc)}
	for name, cc := range clusters {
		bases[name] = loginBase(r, cc)
	}
	return newPools(r, bases, 0)
}

// newPools is the machinery shared by TenantLogin and the gateway shards:
// pools made from bases (one per cluster) under one budget; shards is 0 for
// TenantLogin.
func newPools(r *Router, bases map[string]*pgxpool.Config, shards int) *loginPools {
	lp := &loginPools{
		r:      r,
		bases:  bases,
		budget: newBudget(r.cfg.MaxConns),
		idle:   r.cfg.PoolIdleTimeout,
		shards: shards,
		pools:  map[string]*tenantPool{},
		stop:   make(chan struct{}),
	}
	lp.budget.onRetry = func() {
		// A waiter still waits: the estimate of what is being freed may be
		// stale (a connection counted twice); start again from zero.
		lp.mu.Lock()
		lp.freeing = 0
		lp.mu.Unlock()
	}
	return lp
}

// loginBase is the template of the tenant pools on one cluster.
func loginBase(r *Router, pc *pgxpool.Config) *pgxpool.Config {
	base := pc.Copy()
	base.AfterConnect, base.BeforeAcquire, base.AfterRelease, base.BeforeClose = nil, nil, nil, nil //nolint:staticcheck // cleared, not used
	base.PrepareConn = nil
	base.ConnConfig.Tracer = nil
	base.MinConns, base.MinIdleConns = 0, 0
	base.MaxConnIdleTime = r.cfg.PoolIdleTimeout
	if base.ConnConfig.ConnectTimeout == 0 || base.ConnConfig.ConnectTimeout > r.cfg.AcquireTimeout {
		// Bounds a dial that waits for the budget after its acquirer gave up
		// (pgxpool finishes constructing connections it started).
		base.ConnConfig.ConnectTimeout = r.cfg.AcquireTimeout
	}
	if base.ConnConfig.DialFunc == nil {
		base.ConnConfig.DialFunc = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	return base
}

// acquireLogin is Acquire in TenantLogin mode.
func (r *Router) acquireLogin(ctx context.Context, id tenancy.ID) (*Conn, error) {
	start := time.Now()
	c, err := r.logins.acquire(ctx, id, start)
	if r.cfg.Tracer != nil {
		r.cfg.Tracer.TraceAcquire(ctx, AcquireData{Tenant: id, Wait: time.Since(start), Err: err})
	}
	return c, err
}

// beginLogin is BeginTx in TenantLogin mode.
func (r *Router) beginLogin(ctx context.Context, id tenancy.ID, opts pgx.TxOptions) (*Tx, error) {
	c, err := r.acquireLogin(ctx, id)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		c.Release()
		return nil, fmt.Errorf("router: beginning a transaction for tenant %q: %w", id, connLost(err))
	}
	return &Tx{Tx: tx, c: c}, nil
}

func (lp *loginPools) acquire(ctx context.Context, id tenancy.ID, start time.Time) (*Conn, error) {
	r := lp.r
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	t, err := r.lookup(ctx, id)
	if err != nil {
		if errors.Is(err, tenancy.ErrNotActive) || errors.Is(err, tenancy.ErrNotFound) {
			// Suspended, deleted or gone: its connections must not serve
			// anyone, whatever the database would still allow.
			lp.retire(id)
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AcquireTimeout)
	defer cancel()
	pc, release, err := lp.checkout(ctx, t, start)
	if err != nil {
		return nil, err
	}
	return &Conn{r: r, pc: pc, tenant: t, st: r.state(pc.Conn()), slot: release, start: start}, nil
}

// checkout takes a connection for tenant t from the pool serving it, under
// the pool's cap and the global budget. release must be called after the
// connection went back to its pool (or was destroyed). ctx bounds the wait.
func (lp *loginPools) checkout(ctx context.Context, t *tenancy.Tenant, start time.Time) (pc *pgxpool.Conn, release func(), err error) {
	id := t.ID
	tp, err := lp.get(ctx, t)
	if err != nil {
		if lp.shards > 0 {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("router: opening the pool of tenant %q: %w", id, err)
	}
	select {
	case tp.sem <- struct{}{}:
	case <-ctx.Done():
		lp.unref(tp, false)
		lp.timeouts.Add(1)
		return nil, nil, lp.busy(ctx, id, tp.limit, start, "")
	}

	// Use an idle connection of the pool if there is one, else reserve a
	// budget token for a new one; a release in this pool while waiting
	// wakes the waiter to look again.
	var tk *ticket
	for {
		lp.mu.Lock()
		if tp.open > tp.inUse {
			tp.inUse++
			lp.mu.Unlock()
			break
		}
		// A tenant that has connections takes a free token if the budget
		// has more free than its reserve (a tenth, kept for tenants with no
		// connection at all), else waits for one of its own connections;
		// only a tenant with none waits in the budget's FIFO line and makes
		// others give one up. So a busy tenant never grows at the expense of
		// one with nothing, and when every active tenant has its connection,
		// nobody churns.
		if tp.open > 0 {
			if lp.budget.tryAcquire(max(1, lp.budget.max/10)) {
				tp.inUse++
				lp.mu.Unlock()
				tk = &ticket{b: lp.budget, held: 1}
				ctx = context.WithValue(ctx, ticketKey{}, tk)
				break
			}
			wake := tp.released
			lp.mu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				<-tp.sem
				lp.unref(tp, false)
				lp.timeouts.Add(1)
				return nil, nil, lp.busy(ctx, id, tp.limit, start, "one of the tenant's connections (the global budget is spent)")
			}
		}
		lp.needy++
		wake := tp.released
		lp.mu.Unlock()
		err := lp.budget.acquire(ctx, lp.evictOne, wake)
		lp.mu.Lock()
		lp.needy--
		if err == nil {
			tp.inUse++
		}
		lp.mu.Unlock()
		if errors.Is(err, errWoken) {
			continue
		}
		if err != nil {
			<-tp.sem
			lp.unref(tp, false)
			lp.timeouts.Add(1)
			return nil, nil, lp.busy(ctx, id, tp.limit, start, fmt.Sprintf("the global connection budget of %d", lp.budget.max))
		}
		tk = &ticket{b: lp.budget, held: 1}
		ctx = context.WithValue(ctx, ticketKey{}, tk)
		break
	}
	pc, err = tp.pool.Acquire(ctx)
	if tk != nil {
		tk.finish()
	}
	if err != nil {
		lp.undo(tp)
		if ctx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			lp.timeouts.Add(1)
			return nil, nil, lp.busy(ctx, id, tp.limit, start, fmt.Sprintf("a connection (global budget %d)", lp.budget.max))
		}
		return nil, nil, lp.loginFailed(ctx, t, err)
	}
	return pc, func() {
		<-tp.sem
		lp.unref(tp, true)
	}, nil
}

// busy builds the error for a wait that ran out. what names the resource
// waited for when it is not the tenant's own cap.
func (lp *loginPools) busy(ctx context.Context, id tenancy.ID, limit int, start time.Time, what string) error {
	err := error(&tenancy.BusyError{ID: id, Limit: limit, Waited: time.Since(start)})
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("router: acquiring a connection for tenant %q: %w", id, context.Canceled)
	}
	if what != "" {
		err = fmt.Errorf("router: waiting for %s: %w", what, err)
	}
	return err
}

// loginFailed turns a failed connection attempt into the most useful error:
// when the database refused the login, the tenant was most likely suspended
// or deleted since it was cached, so the catalog is asked again.
func (lp *loginPools) loginFailed(ctx context.Context, t *tenancy.Tenant, err error) error {
	id := t.ID
	var pgErr *pgconn.PgError
	if lp.shards > 0 {
		return fmt.Errorf("router: connecting to gateway shard %d for tenant %q (do the shard logins exist, with the DSN's password? see provision.Provisioner.SetGatewayPassword): %w",
			tenancy.ShardOf(t.Key, lp.shards), id, connLost(err))
	}
	if errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.InvalidAuthorizationSpecification || pgErr.Code == pgerrcode.InvalidPassword) {
		lp.r.cache.forget(id)
		if _, lerr := lp.r.lookup(ctx, id); lerr != nil {
			lp.retire(id)
			return lerr
		}
		return fmt.Errorf("router: logging in as tenant %q's login role (is it provisioned with the same Credentials? see provision.Provisioner.EnsureLogin): %w", id, err)
	}
	return fmt.Errorf("router: connecting for tenant %q: %w", id, connLost(err))
}

// get returns tenant t's pool, creating it if needed, with a reference the
// caller must drop (unref).
func (lp *loginPools) get(ctx context.Context, t *tenancy.Tenant) (*tenantPool, error) {
	for attempt := 0; ; attempt++ {
		lp.mu.Lock()
		if lp.closed {
			lp.mu.Unlock()
			return nil, ErrClosed
		}
		name := lp.poolName(t)
		tp := lp.pools[name]
		if tp != nil && lp.shards == 0 && (tp.key != t.Key || !tp.version.Equal(t.UpdatedAt)) {
			// The catalog record changed (limits, a reactivation): new
			// connections get the new settings.
			lp.removeLocked(tp)
			tp = nil
		}
		if tp != nil {
			tp.refs++
			tp.lastUsed = time.Now()
			lp.lru.MoveToFront(tp.elem)
			lp.mu.Unlock()
			return tp, nil
		}
		lp.mu.Unlock()
		if attempt > 0 {
			return nil, fmt.Errorf("internal: tenant pool vanished while being created")
		}
		// Build outside the lock: the password may come from a remote
		// secret store.
		var err error
		if lp.shards > 0 {
			tp, err = lp.newShardPool(t, name)
		} else {
			tp, err = lp.newPool(ctx, t)
		}
		if err != nil {
			return nil, err
		}
		lp.mu.Lock()
		if other := lp.pools[name]; other != nil || lp.closed {
			// Lost a race: use the other one (next iteration).
			lp.mu.Unlock()
			tp.pool.Close()
			continue
		}
		tp.refs = 1
		tp.lastUsed = time.Now()
		tp.elem = lp.lru.PushFront(tp)
		lp.pools[name] = tp
		lp.mu.Unlock()
		lp.created.Add(1)
		lp.reaper.Do(lp.startReaper)
		return tp, nil
	}
}

// poolName names the pool serving t: the tenant's ID in TenantLogin mode,
// its cluster and shard with gateway shards.
func (lp *loginPools) poolName(t *tenancy.Tenant) string {
	if lp.shards == 0 {
		return string(t.ID)
	}
	cluster := t.Cluster
	if cluster == "" {
		cluster = lp.r.cfg.Cluster
	}
	return cluster + "/" + strconv.Itoa(tenancy.ShardOf(t.Key, lp.shards))
}

// loginRole derives the login role's name from the runtime role recorded in
// the catalog (<prefix>_t_<key> -> <prefix>_l_<key>), so the router needs no
// naming configuration of its own.
func loginRole(t *tenancy.Tenant) (string, error) {
	suffix := "_t_" + string(t.Key)
	prefix, ok := strings.CutSuffix(t.Role, suffix)
	if !ok || prefix == "" {
		return "", fmt.Errorf("tenant %q: runtime role %q does not follow the <prefix>_t_<key> naming; cannot derive its login role", t.ID, t.Role)
	}
	n := tenancy.Naming{Prefix: prefix}
	if err := n.Validate(); err != nil {
		return "", err
	}
	return n.LoginRole(t.Key), nil
}

func (lp *loginPools) newPool(ctx context.Context, t *tenancy.Tenant) (*tenantPool, error) {
	r := lp.r
	login, err := loginRole(t)
	if err != nil {
		return nil, err
	}
	pw, err := r.cfg.Credentials.LoginPassword(ctx, t.Key)
	if err != nil {
		return nil, fmt.Errorf("getting the login password: %w", err)
	}
	limit := r.cfg.MaxConnsPerTenant
	if t.Limits.MaxConns > 0 {
		limit = t.Limits.MaxConns
	}
	limit = min(limit, lp.budget.max)
	tp := &tenantPool{name: string(t.ID), key: t.Key, version: t.UpdatedAt, login: login, limit: limit, sem: make(chan struct{}, limit), released: make(chan struct{})}

	cluster := t.Cluster
	if cluster == "" {
		cluster = r.cfg.Cluster
	}
	base, ok := lp.bases[cluster]
	if !ok {
		return nil, unknownCluster(t, r.cfg)
	}
	pc := base.Copy()
	pc.ConnConfig.User = login
	pc.ConnConfig.Password = pw
	pc.ConnConfig.RuntimeParams["search_path"] = quote(t.Schema) + ", pg_temp"
	if ms := r.timeoutFor(t).Milliseconds(); ms > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(ms, 10)
	}
	pc.MaxConns = int32(limit)
	pc.ConnConfig.DialFunc = lp.dialer(tp, base.ConnConfig.DialFunc)
	if r.queryTracer != nil {
		pc.ConnConfig.Tracer = &pgxTracer{r: r}
	}
	pc.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		// Both facts come with the login, so checking costs no round trip.
		pg := conn.PgConn()
		if su := pg.ParameterStatus("session_authorization"); su != login {
			return fmt.Errorf("router: logged in for tenant %q as %q, want %q", t.ID, su, login)
		}
		if pg.ParameterStatus("is_superuser") == "on" {
			return fmt.Errorf("router: tenant %q's login role %q is a superuser; bulkhead refuses to route through it", t.ID, login)
		}
		r.mu.Lock()
		r.conns[conn] = &connState{gateway: login, key: t.Key, version: t.UpdatedAt, tenant: t.ID}
		r.mu.Unlock()
		return nil
	}
	pc.BeforeClose = r.forget
	// No I/O: MinConns is 0.
	if tp.pool, err = pgxpool.NewWithConfig(context.WithoutCancel(ctx), pc); err != nil {
		return nil, err
	}
	return tp, nil
}

// dialer counts every connection of tp against the budget, from the dial
// until the server has closed it.
func (lp *loginPools) dialer(tp *tenantPool, dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		tk, _ := ctx.Value(ticketKey{}).(*ticket)
		if !tk.take() {
			// A dial nobody reserved for (pgxpool replacing a connection
			// that broke or was trimmed meanwhile): wait in line like a
			// tenant without connections, which it is for the moment.
			lp.mu.Lock()
			lp.needy++
			lp.mu.Unlock()
			err := lp.budget.acquire(ctx, lp.evictOne, nil)
			lp.mu.Lock()
			lp.needy--
			lp.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("waiting for the global connection budget of %d: %w", lp.budget.max, err)
			}
		}
		giveBack := lp.budget.release
		if tk != nil {
			giveBack = tk.put
		}
		nc, err := dial(ctx, network, addr)
		if err != nil {
			giveBack()
			return nil, err
		}
		lp.mu.Lock()
		tp.open++
		lp.mu.Unlock()
		return &budgetConn{Conn: nc, done: func() {
			lp.mu.Lock()
			tp.open--
			// Waiters counting on this connection must look again (and
			// queue for the budget if it was the pool's last).
			tp.wakeLocked()
			if lp.freeing > 0 {
				lp.freeing--
			}
			lp.mu.Unlock()
			giveBack()
		}}, nil
	}
}

// wakeLocked wakes the checkouts waiting for one of tp's connections.
// lp.mu must be held.
func (tp *tenantPool) wakeLocked() {
	close(tp.released)
	tp.released = make(chan struct{})
}

// undo reverts a checkout that got no connection.
func (lp *loginPools) undo(tp *tenantPool) {
	<-tp.sem
	lp.unref(tp, true)
}

// unref drops a reference to tp; held says it was a checkout (inUse).
func (lp *loginPools) unref(tp *tenantPool, held bool) {
	lp.mu.Lock()
	if held {
		tp.inUse--
		// Wake this pool's own waiters: the connection is theirs.
		tp.wakeLocked()
	}
	needy := lp.needy
	tp.refs--
	tp.lastUsed = time.Now()
	closeNow := tp.elem == nil && tp.refs == 0 && !tp.closing
	if closeNow {
		tp.closing = true
	}
	lp.mu.Unlock()
	if closeNow {
		lp.closePool(tp)
	}
	if held && needy > 0 {
		// Tenants without any connection wait for the budget: close an
		// idle connection for them.
		lp.evictOne()
	}
}

// removeLocked takes tp out of the map; it is closed once its last
// reference goes.
func (lp *loginPools) removeLocked(tp *tenantPool) {
	if tp.elem == nil {
		return
	}
	lp.lru.Remove(tp.elem)
	tp.elem = nil
	delete(lp.pools, tp.name)
	if tp.refs == 0 && !tp.closing {
		tp.closing = true
		lp.wg.Add(1)
		go func() {
			defer lp.wg.Done()
			tp.pool.Close()
		}()
	}
}

// retire closes tenant id's pool, if any, as soon as it serves no checkout.
func (lp *loginPools) retire(id tenancy.ID) {
	lp.mu.Lock()
	if tp := lp.pools[string(id)]; tp != nil {
		lp.removeLocked(tp)
	}
	lp.mu.Unlock()
}

func (lp *loginPools) closePool(tp *tenantPool) {
	lp.wg.Add(1)
	go func() {
		defer lp.wg.Done()
		tp.pool.Close()
	}()
}

// evictOne frees room in the budget, cheapest loss first: an idle
// connection of a pool that has more than one, else, unless some pool has
// more than one connection all in use (one of them will be released soon,
// and trimming it is cheaper), the least recently used pool that serves no
// checkout, else any idle connection. Pools are scanned from the least
// recently used. Tokens return once the server has closed the connections.
func (lp *loginPools) evictOne() {
	lp.mu.Lock()
	if lp.freeing >= lp.needy {
		lp.mu.Unlock()
		return
	}
	var trim, lastIdle *tenantPool
	busySurplus := false
	for e := lp.lru.Back(); e != nil; e = e.Prev() {
		tp := e.Value.(*tenantPool)
		if tp.open >= 2 && tp.open > tp.inUse {
			trim = tp
			break
		}
		busySurplus = busySurplus || tp.open >= 2
		if lastIdle == nil && tp.refs == 0 && tp.open > 0 {
			lastIdle = tp
		}
	}
	if trim == nil && busySurplus {
		lp.mu.Unlock()
		return
	}
	if trim == nil && lastIdle != nil {
		lp.freeing += lastIdle.open
		lp.removeLocked(lastIdle)
		lp.mu.Unlock()
		lp.evicted.Add(1)
		return
	}
	if trim == nil {
		for e := lp.lru.Back(); e != nil; e = e.Prev() {
			if tp := e.Value.(*tenantPool); tp.open > tp.inUse {
				trim = tp
				break
			}
		}
	}
	if trim != nil {
		trim.refs++  // keeps it open while trimming
		trim.inUse++ // the idle connection to close: nobody else counts on it
		lp.freeing++
	}
	lp.mu.Unlock()
	if trim == nil {
		return
	}
	lp.trimmed.Add(1)
	lp.wg.Add(1)
	go func() {
		defer lp.wg.Done()
		idle := trim.pool.AcquireAllIdle(context.Background())
		if len(idle) == 0 {
			// Taken meanwhile: nothing will come back from this trim.
			lp.mu.Lock()
			if lp.freeing > 0 {
				lp.freeing--
			}
			lp.mu.Unlock()
		}
		// Give the others back at once, then close the first: a closed
		// connection is destroyed by the pool on release.
		for _, c := range idle[min(1, len(idle)):] {
			c.Release()
		}
		if len(idle) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout+time.Second)
			_ = idle[0].Conn().Close(ctx)
			cancel()
			idle[0].Release()
		}
		lp.mu.Lock()
		trim.inUse--
		trim.wakeLocked()
		lp.mu.Unlock()
		lp.unref(trim, false)
	}()
}

func (lp *loginPools) startReaper() {
	every := min(max(lp.idle/2, 10*time.Millisecond), 10*time.Second)
	lp.wg.Add(1)
	go func() {
		defer lp.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-lp.stop:
				return
			case now := <-tick.C:
				lp.reap(now)
			}
		}
	}()
}

// reap closes the pools that served nothing for the idle period.
func (lp *loginPools) reap(now time.Time) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	for e := lp.lru.Back(); e != nil; {
		tp := e.Value.(*tenantPool)
		prev := e.Prev()
		if tp.refs == 0 && now.Sub(tp.lastUsed) >= lp.idle {
			lp.removeLocked(tp)
			lp.reaped.Add(1)
		} else if now.Sub(tp.lastUsed) < lp.idle {
			break // the rest were used more recently
		}
		e = prev
	}
}

// close closes every pool; it waits for checkouts to be released.
func (lp *loginPools) close() {
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		return
	}
	lp.closed = true
	close(lp.stop)
	for _, tp := range lp.pools {
		lp.lru.Remove(tp.elem)
		tp.elem = nil
		delete(lp.pools, tp.name)
		if !tp.closing {
			tp.closing = true
			lp.closePool(tp)
		}
	}
	lp.mu.Unlock()
	lp.wg.Wait()
}

// TenantPoolStat is a snapshot of TenantLogin mode's pools.
type TenantPoolStat struct {
	// Pools is the number of tenant pools open.
	Pools int
	// Budget is the global connection budget (Config.MaxConns).
	Budget int
	// Conns is the number of connections counted against the budget now;
	// MaxConns is its highest value since New. Neither ever exceeds Budget.
	Conns, MaxConns int
	// InUse is the number of checkouts.
	InUse int
	// Waiting is the number of acquirers waiting for the budget.
	Waiting int
	// Created, Evicted and Reaped count pools opened, closed to make room in
	// the budget, and closed after PoolIdleTimeout; Trimmed counts idle
	// connections closed in pools that still served checkouts.
	Created, Evicted, Reaped, Trimmed int64
	// Timeouts counts checkouts that gave up with a *tenancy.BusyError.
	Timeouts int64
}

// TenantPoolStat returns a snapshot of the tenant pools (TenantLogin mode;
// the zero value in other modes).
func (r *Router) TenantPoolStat() TenantPoolStat { return r.logins.stat() }

func (lp *loginPools) stat() TenantPoolStat {
	if lp == nil {
		return TenantPoolStat{}
	}
	used, high, waiting := lp.budget.stat()
	s := TenantPoolStat{Budget: lp.budget.max, Conns: used, MaxConns: high, Waiting: waiting,
		Created: lp.created.Load(), Evicted: lp.evicted.Load(), Reaped: lp.reaped.Load(), Trimmed: lp.trimmed.Load(), Timeouts: lp.timeouts.Load()}
	lp.mu.Lock()
	s.Pools = len(lp.pools)
	for _, tp := range lp.pools {
		s.InUse += tp.inUse
	}
	lp.mu.Unlock()
	return s
}
