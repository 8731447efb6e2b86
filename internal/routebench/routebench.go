// Package routebench measures tenant routing against a raw pool and naive
// peers on one database, in one run. It backs router/bench_test.go (go test
// -bench) and cmd/bulkhead-bench (longer, interleaved runs with ratios,
// latency percentiles and CPU per operation). See docs/BENCHMARKS.md.
package routebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	bhsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Rows is the number of rows in each tenant's items table.
const Rows = 100

// Migrations are the brand-licensing tenant schema (sql.LicensingMigrations,
// what provisioning is measured with) plus one table of Rows rows for point
// selects.
var Migrations = func() fstest.MapFS {
	m := fstest.MapFS{
		"0100_bench_items.up.sql": {Data: []byte(`
CREATE TABLE items (id bigint PRIMARY KEY, note text NOT NULL);
INSERT INTO items SELECT g, 'note ' || g FROM generate_series(1, ` + strconv.Itoa(Rows) + `) g;
`)},
		"0100_bench_items.down.sql": {Data: []byte(`DROP TABLE items;`)},
	}
	lic := bhsql.LicensingMigrations()
	entries, err := fs.ReadDir(lic, ".")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(lic, e.Name())
		if err != nil {
			panic(err)
		}
		m[e.Name()] = &fstest.MapFile{Data: b}
	}
	return m
}()

// Env is a deployment with provisioned tenants.
type Env struct {
	Dep     *isotest.Deployment
	Srv     *isotest.Server
	Tenants []*tenancy.Tenant
	// Creates are the durations of the Create calls, in order: Creates[i] ran
	// with i tenants already provisioned (approximately, with Workers > 1).
	Creates []time.Duration
	// Shards is the deployment's gateway shard count (SetupOpts.GatewayShards).
	Shards int
}

// SetupOpts configures Setup.
type SetupOpts struct {
	Tenants int
	// Workers provision tenants concurrently. Default: 1.
	Workers int
	// Progress, when set, receives a line every 1,000 tenants.
	Progress io.Writer
	// GatewayShards (Setup only), when above 1, provisions the tenants with
	// that many gateway shards; Grow then also makes the gateway itself a
	// member of every tenant, so that single-gateway and sharded designs run
	// on the same database in the same run.
	GatewayShards int
}

// Setup starts a deployment on srv and provisions the tenants.
func Setup(ctx context.Context, srv *isotest.Server, o SetupOpts) (*Env, error) {
	dep, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Migrations: Migrations, GatewayShards: o.GatewayShards})
	if err != nil {
		return nil, err
	}
	e := &Env{Dep: dep, Srv: srv, Tenants: make([]*tenancy.Tenant, o.Tenants), Creates: make([]time.Duration, o.Tenants), Shards: max(1, o.GatewayShards)}
	if err := e.Grow(ctx, o); err != nil {
		_ = dep.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return e, nil
}

// Grow provisions tenants until there are o.Tenants.
func (e *Env) Grow(ctx context.Context, o SetupOpts) error {
	have := 0
	for have < len(e.Tenants) && e.Tenants[have] != nil {
		have++
	}
	if o.Tenants > len(e.Tenants) {
		e.Tenants = append(e.Tenants, make([]*tenancy.Tenant, o.Tenants-len(e.Tenants))...)
		e.Creates = append(e.Creates, make([]time.Duration, o.Tenants-len(e.Creates))...)
	}
	workers := max(1, o.Workers)
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				t, err := e.Dep.Provisioner.Create(ctx, tenancy.ID(fmt.Sprintf("bench-%05d", i)), nil)
				if err != nil {
					errc <- err
					return
				}
				e.Creates[i], e.Tenants[i] = time.Since(start), t
			}
		}()
	}
	var err error
feed:
	for i := have; i < o.Tenants; i++ {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
		if o.Progress != nil && (i+1)%1000 == 0 {
			fmt.Fprintf(o.Progress, "provisioned %d tenants\n", i+1)
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if err == nil && e.Shards > 1 {
		err = e.grantGateway(ctx)
	}
	return err
}

// grantGateway makes the gateway itself a member of every active tenant,
// besides the tenant's shard login (a sharded deployment).
func (e *Env) grantGateway(ctx context.Context) error {
	cfg := e.Dep.Provisioner.Config()
	cfg.GatewayShards, cfg.Migrations = 0, nil
	p, err := provision.New(e.Dep.Admin, &cfg)
	if err != nil {
		return err
	}
	_, err = p.Reshard(ctx, &provision.ReshardOpts{KeepOthers: true})
	return err
}

// Close drops the deployment.
func (e *Env) Close(ctx context.Context) error { return e.Dep.Close(ctx) }

// Op is one unit of work for tenant index t: a point select of row key.
type Op func(ctx context.Context, t int, key int64) error

// Design is one way of routing, with its pools.
type Design struct {
	Name  string
	Op    Op
	close []func()
}

// Close closes the design's pools.
func (d *Design) Close() {
	for _, f := range d.close {
		f()
	}
}

// DesignNames lists every design, the ceiling first. The -affinity designs
// run with Config.Affinity on a pool twice the size of the others. The
// -sharded designs route through the deployment's gateway shards
// (SetupOpts.GatewayShards), their pools sharing a budget of PoolSize.
var DesignNames = []string{
	"raw", "raw-exec",
	"sessionrole-db", "sessionrole-db-affinity", "sessionrole-acquire", "txlocal-db", "txlocal-db-affinity", "txlocal-intx",
	"naive-setrole", "naive-combined", "naive-txbatch", "pool-per-tenant",
	"sessionrole-db-sharded", "txlocal-db-sharded",
}

// DesignOpts sizes the pools.
type DesignOpts struct {
	// PoolSize is every shared pool's MaxConns. Default: 16.
	PoolSize int
	// PerTenantConns is each pool's MaxConns in pool-per-tenant. Default: 1.
	PerTenantConns int
}

const pointSQL = "SELECT note FROM items WHERE id = $1"

// NewDesign opens the pools of design name.
func (e *Env) NewDesign(ctx context.Context, name string, o DesignOpts) (*Design, error) {
	if o.PoolSize == 0 {
		o.PoolSize = 16
	}
	if o.PerTenantConns == 0 {
		o.PerTenantConns = 1
	}
	d := &Design{Name: name}
	pool := func(dsn string, mode pgx.QueryExecMode) (*pgxpool.Pool, error) {
		pc, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		pc.MaxConns = int32(o.PoolSize)
		pc.ConnConfig.DefaultQueryExecMode = mode
		if mode == pgx.QueryExecModeExec {
			pc.ConnConfig.StatementCacheCapacity, pc.ConnConfig.DescriptionCacheCapacity = 0, 0
		}
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err == nil {
			d.close = append(d.close, p.Close)
		}
		return p, err
	}
	rtr := func(mode router.Mode) (*router.Router, error) {
		affinity, size, shards := 0, o.PoolSize, 0
		if strings.HasSuffix(name, "-affinity") {
			// Affinity pays off only when connections sit idle: give the
			// router twice the connections (all of them may park).
			affinity, size = -1, 2*o.PoolSize
		}
		if strings.HasSuffix(name, "-sharded") {
			if e.Shards < 2 {
				return nil, fmt.Errorf("routebench: design %s needs a deployment with gateway shards (SetupOpts.GatewayShards)", name)
			}
			shards = e.Shards
		}
		r, err := router.New(ctx, e.Dep.DB.GatewayDSN, &router.Config{
			Mode: mode, MaxConnsPerTenant: size, StatusTTL: time.Minute, Affinity: affinity, GatewayShards: shards, MaxConns: size,
			ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = int32(size) },
		})
		if err == nil {
			d.close = append(d.close, r.Close)
		}
		return r, err
	}
	ts := e.Tenants
	ids := make([]tenancy.ID, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	var scan string
	switch name {
	case "raw", "raw-exec":
		mode := pgx.QueryExecModeCacheStatement
		if name == "raw-exec" {
			mode = pgx.QueryExecModeExec
		}
		p, err := pool(e.Dep.DB.SuperDSN, mode)
		if err != nil {
			return nil, err
		}
		qualified := make([]string, len(ts))
		for i, t := range ts {
			qualified[i] = "SELECT note FROM " + pgx.Identifier{t.Schema, "items"}.Sanitize() + " WHERE id = $1"
		}
		d.Op = func(ctx context.Context, t int, key int64) error {
			return p.QueryRow(ctx, qualified[t], key).Scan(&scan)
		}
	case "sessionrole-db", "sessionrole-db-affinity", "sessionrole-acquire", "sessionrole-db-sharded":
		r, err := rtr(router.SessionRole)
		if err != nil {
			return nil, err
		}
		if name != "sessionrole-acquire" {
			d.Op = func(ctx context.Context, t int, key int64) error {
				return r.DB(ids[t]).QueryRow(ctx, pointSQL, key).Scan(&scan)
			}
		} else {
			d.Op = func(ctx context.Context, t int, key int64) error {
				c, err := r.Acquire(ctx, ids[t])
				if err != nil {
					return err
				}
				defer c.Release()
				return c.QueryRow(ctx, pointSQL, key).Scan(&scan)
			}
		}
	case "txlocal-db", "txlocal-db-affinity", "txlocal-intx", "txlocal-db-sharded":
		r, err := rtr(router.TxLocal)
		if err != nil {
			return nil, err
		}
		if name != "txlocal-intx" {
			d.Op = func(ctx context.Context, t int, key int64) error {
				return r.DB(ids[t]).QueryRow(ctx, pointSQL, key).Scan(&scan)
			}
		} else {
			d.Op = func(ctx context.Context, t int, key int64) error {
				return r.InTx(ctx, ids[t], func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, pointSQL, key).Scan(&scan)
				})
			}
		}
	case "naive-setrole", "naive-combined", "naive-txbatch":
		p, err := pool(e.Dep.DB.GatewayDSN, pgx.QueryExecModeExec)
		if err != nil {
			return nil, err
		}
		role := make([]string, len(ts))
		path := make([]string, len(ts))
		for i, t := range ts {
			role[i] = "SET ROLE " + pgx.Identifier{t.Role}.Sanitize()
			path[i] = "SET search_path = " + pgx.Identifier{t.Schema}.Sanitize()
		}
		switch name {
		case "naive-setrole":
			// Two round trips to switch, the query, one to reset on release.
			d.Op = func(ctx context.Context, t int, key int64) error {
				c, err := p.Acquire(ctx)
				if err != nil {
					return err
				}
				defer c.Release()
				for _, s := range []string{role[t], path[t]} {
					if _, err := c.Exec(ctx, s); err != nil {
						return err
					}
				}
				if err := c.QueryRow(ctx, pointSQL, key).Scan(&scan); err != nil {
					return err
				}
				_, err = c.Exec(ctx, "RESET ROLE; RESET search_path")
				return err
			}
		case "naive-combined":
			// One combined switch round trip (reset included), then the query.
			for i := range role {
				role[i] = "RESET ALL; " + role[i] + "; " + path[i]
			}
			d.Op = func(ctx context.Context, t int, key int64) error {
				c, err := p.Acquire(ctx)
				if err != nil {
					return err
				}
				defer c.Release()
				if _, err := c.Exec(ctx, role[t]); err != nil {
					return err
				}
				return c.QueryRow(ctx, pointSQL, key).Scan(&scan)
			}
		case "naive-txbatch":
			// BEGIN; SET LOCAL ...; query; COMMIT as one batch (no reset, no
			// verification).
			for i, t := range ts {
				role[i] = "SET LOCAL ROLE " + pgx.Identifier{t.Role}.Sanitize()
				path[i] = "SET LOCAL search_path = " + pgx.Identifier{t.Schema}.Sanitize()
			}
			d.Op = func(ctx context.Context, t int, key int64) error {
				b := &pgx.Batch{}
				b.Queue("BEGIN")
				b.Queue(role[t])
				b.Queue(path[t])
				b.Queue(pointSQL, key).QueryRow(func(r pgx.Row) error { return r.Scan(&scan) })
				b.Queue("COMMIT")
				return p.SendBatch(ctx, b).Close()
			}
		}
	case "pool-per-tenant":
		pools, err := e.perTenantPools(ctx, o.PerTenantConns)
		if err != nil {
			return nil, err
		}
		d.close = append(d.close, func() {
			for _, p := range pools {
				p.Close()
			}
		})
		d.Op = func(ctx context.Context, t int, key int64) error {
			return pools[t].QueryRow(ctx, pointSQL, key).Scan(&scan)
		}
	default:
		return nil, fmt.Errorf("routebench: unknown design %q", name)
	}
	return d, nil
}

var loginsMu sync.Mutex

// perTenantPools creates (once) a login role per tenant that inherits the
// tenant's runtime role, and opens a lazily connecting pool for each.
func (e *Env) perTenantPools(ctx context.Context, conns int) ([]*pgxpool.Pool, error) {
	loginsMu.Lock()
	defer loginsMu.Unlock()
	if len(e.Tenants) > 1000 {
		return nil, errors.New("routebench: pool-per-tenant is limited to 1,000 tenants (one login role and pool each)")
	}
	super, err := pgx.Connect(ctx, e.Dep.DB.SuperDSN)
	if err != nil {
		return nil, err
	}
	defer super.Close(context.WithoutCancel(ctx))
	pools := make([]*pgxpool.Pool, len(e.Tenants))
	closeAll := func() {
		for _, p := range pools {
			if p != nil {
				p.Close()
			}
		}
	}
	for i, t := range e.Tenants {
		login := e.Dep.DB.Prefix + "_login_" + strconv.Itoa(i)
		const pw = "bench-login-pw"
		var exists bool
		if err := super.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", login).Scan(&exists); err != nil {
			closeAll()
			return nil, err
		}
		if !exists {
			q := pgx.Identifier{login}.Sanitize()
			if _, err := super.Exec(ctx, "CREATE ROLE "+q+" LOGIN INHERIT PASSWORD '"+pw+"' IN ROLE "+pgx.Identifier{t.Role}.Sanitize()+
				"; GRANT CONNECT ON DATABASE "+pgx.Identifier{e.Dep.DB.Name}.Sanitize()+" TO "+q); err != nil {
				closeAll()
				return nil, err
			}
		}
		pc, err := pgxpool.ParseConfig(e.Srv.DSNFor(e.Dep.DB.Name, login, pw))
		if err != nil {
			closeAll()
			return nil, err
		}
		pc.MaxConns, pc.MinConns = int32(conns), 0
		pc.ConnConfig.RuntimeParams["search_path"] = t.Schema
		if pools[i], err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			closeAll()
			return nil, err
		}
	}
	return pools, nil
}

// Percentile returns the p-th percentile (0..100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// SortDurations sorts d in place and returns it.
func SortDurations(d []time.Duration) []time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}
