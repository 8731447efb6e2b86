package routebench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// FirstQuery measures, on samples gateway connections, the first switch and
// point select on a fresh backend (connection time excluded): on PostgreSQL
// 15 the first SET ROLE computes the gateway's role memberships, which grows
// with the number of tenants.
func (e *Env) FirstQuery(ctx context.Context, samples int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, samples)
	for range samples {
		conn, err := pgx.Connect(ctx, e.Dep.DB.GatewayDSN)
		if err != nil {
			return nil, err
		}
		d, err := e.switchAndSelect(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return SortDurations(out), nil
}

// AfterInvalidation measures, on one warm gateway connection, the first
// switch and point select after each of samples provision.Create calls: any
// role membership change invalidates every backend's membership cache.
// It adds samples tenants to the deployment (not to e.Tenants).
func (e *Env) AfterInvalidation(ctx context.Context, samples int) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, e.Dep.DB.GatewayDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := e.switchAndSelect(ctx, conn); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, samples)
	for range samples {
		if _, err := e.switchAndSelect(ctx, conn); err != nil { // warm
			return nil, err
		}
		id := tenancy.ID(fmt.Sprintf("inval-%d-%d", len(e.Tenants), rand.IntN(1<<30)))
		if _, err := e.Dep.Provisioner.Create(ctx, id, nil); err != nil {
			return nil, err
		}
		d, err := e.switchAndSelect(ctx, conn)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return SortDurations(out), nil
}

func (e *Env) switchAndSelect(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	return switchAndSelectTenant(ctx, conn, e.Tenants[rand.IntN(len(e.Tenants))])
}

// BackendMemory touches one table of each of the first n tenants on a fresh
// superuser backend and returns the backend's total memory context size
// before and after (pg_backend_memory_contexts, PostgreSQL 14+): what a
// pooled backend cycling through n tenants caches.
func (e *Env) BackendMemory(ctx context.Context, n int) (before, after int64, err error) {
	conn, err := pgx.Connect(ctx, e.Dep.DB.SuperDSN)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	const q = "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts"
	if err := conn.QueryRow(ctx, q).Scan(&before); err != nil {
		return 0, 0, err
	}
	var note string
	for _, t := range e.Tenants[:min(n, len(e.Tenants))] {
		if err := conn.QueryRow(ctx, "SELECT note FROM "+pgx.Identifier{t.Schema, "items"}.Sanitize()+" WHERE id = 1", pgx.QueryExecModeExec).Scan(&note); err != nil {
			return 0, 0, err
		}
	}
	err = conn.QueryRow(ctx, q).Scan(&after)
	return before, after, err
}

// Gateway shards: single gateway vs shard logins on the same database.
//
// A sharded Env (SetupOpts.GatewayShards = S) has each tenant's runtime role
// granted both to its shard login and to the gateway itself, so one run can
// compare, on the same tenants, sessions of the gateway (a member of every
// tenant) and of the shard logins (a member of about 1/S of them). The
// functions below take a list of shard counts, each 1 (the gateway) or the
// Env's Shards, and measure them interleaved.

// LoginFor returns the login that serves tenant t with shards gateway shards
// (1: the gateway; 0: the superuser, "").
func (e *Env) LoginFor(shards int, t *tenancy.Tenant) string {
	if shards == 0 {
		return ""
	}
	return tenancy.GatewayShardRole(e.Dep.DB.GatewayRole, tenancy.ShardOf(t.Key, shards), shards)
}

// loginDSN returns a DSN logging in as login with the gateway's password
// (isotest gives every shard login the same one).
func (e *Env) loginDSN(login string) (string, error) {
	cc, err := pgx.ParseConfig(e.Dep.DB.GatewayDSN)
	if err != nil {
		return "", err
	}
	return e.Srv.DSNFor(e.Dep.DB.Name, login, cc.Password), nil
}

func (e *Env) checkShards(shards []int) error {
	for _, s := range shards {
		if s != 0 && s != 1 && s != e.Shards {
			return fmt.Errorf("routebench: shard count %d: this Env has the gateway (1) and %d shards", s, e.Shards)
		}
	}
	return nil
}

// FirstQueryShards is FirstQuery for each shard count in shards, interleaved
// (rotated per sample): a fresh backend of the login serving a random
// tenant, its first switch and point select (connection time excluded). A
// shard count of 0 measures a superuser's backend instead, for which
// PostgreSQL checks no membership: the floor.
func (e *Env) FirstQueryShards(ctx context.Context, samples int, shards []int) ([][]time.Duration, error) {
	if err := e.checkShards(shards); err != nil {
		return nil, err
	}
	out := make([][]time.Duration, len(shards))
	for i := range samples {
		for k := range shards {
			j := (k + i) % len(shards)
			t := e.Tenants[rand.IntN(len(e.Tenants))]
			dsn := e.Dep.DB.SuperDSN
			if shards[j] > 0 {
				var err error
				if dsn, err = e.loginDSN(e.LoginFor(shards[j], t)); err != nil {
					return nil, err
				}
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return nil, err
			}
			d, err := switchAndSelectTenant(ctx, conn, t)
			conn.Close(ctx)
			if err != nil {
				return nil, err
			}
			out[j] = append(out[j], d)
		}
	}
	for _, s := range out {
		SortDurations(s)
	}
	return out, nil
}

// InvalidatedUnderLoad measures the first switch and point select on warm
// backends right after a role-membership change, while tenants are being
// provisioned concurrently (one worker creating tenants in a loop, as a
// running provisioning job would): once a Create has committed after the
// previous sample's last switch, each shard count in shards (interleaved)
// switches one of its warm backends (the one of the login serving a random
// tenant) and runs a point select. It
// returns the sorted durations per shard count and how many tenants were
// created meanwhile (added to the deployment, not to e.Tenants). floor has,
// per shard count, the same switch repeated at once on the same backend
// (its caches rebuilt): what the machine's load alone costs. A shard count
// of 0 measures a superuser's backend, for which PostgreSQL checks no
// membership (it still reloads the caches the invalidation emptied).
func (e *Env) InvalidatedUnderLoad(ctx context.Context, samples int, shards []int) ([][]time.Duration, [][]time.Duration, int, error) {
	if err := e.checkShards(shards); err != nil {
		return nil, nil, 0, err
	}
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	connFor := func(login string) (*pgx.Conn, error) {
		if c := conns[login]; c != nil {
			return c, nil
		}
		dsn := e.Dep.DB.SuperDSN
		if login != "" {
			var err error
			if dsn, err = e.loginDSN(login); err != nil {
				return nil, err
			}
		}
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		conns[login] = c
		return c, nil
	}
	// Warm one backend per login (every shard of the sharded count).
	for _, s := range shards {
		for i := range max(1, s) {
			login := ""
			if s > 0 {
				login = tenancy.GatewayShardRole(e.Dep.DB.GatewayRole, i, s)
			}
			c, err := connFor(login)
			if err != nil {
				return nil, nil, 0, err
			}
			for _, t := range e.Tenants {
				if e.LoginFor(s, t) == login {
					if _, err := switchAndSelectTenant(ctx, c, t); err != nil {
						return nil, nil, 0, err
					}
					break
				}
			}
		}
	}

	var created atomic.Int64
	bg, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for i := 0; bg.Err() == nil; i++ {
			id := tenancy.ID(fmt.Sprintf("load-%d-%d", len(e.Tenants), rand.IntN(1<<30)))
			if _, err := e.Dep.Provisioner.Create(bg, id, nil); err != nil {
				if bg.Err() == nil {
					errc <- err
				}
				return
			}
			created.Add(1)
		}
	}()
	defer func() {
		stop()
		<-errc
	}()

	out := make([][]time.Duration, len(shards))
	floor := make([][]time.Duration, len(shards))
	seen := created.Load()
	for i := range samples {
		// Wait until a Create has committed after every measurement so far,
		// so that each backend's membership cache was invalidated after its
		// last use: the worker creates one tenant after the other, so the
		// second Create counted after seen was read started after that.
		for created.Load() < seen+2 {
			select {
			case err := <-errc:
				if err == nil {
					err = errors.New("routebench: the provisioning worker stopped")
				}
				return nil, nil, 0, err
			case <-time.After(time.Millisecond):
			}
		}
		for k := range shards {
			j := (k + i) % len(shards)
			t := e.Tenants[rand.IntN(len(e.Tenants))]
			c, err := connFor(e.LoginFor(shards[j], t))
			if err != nil {
				return nil, nil, 0, err
			}
			d, err := switchAndSelectTenant(ctx, c, t)
			if err != nil {
				return nil, nil, 0, err
			}
			out[j] = append(out[j], d)
			if d, err = switchAndSelectTenant(ctx, c, t); err != nil {
				return nil, nil, 0, err
			}
			floor[j] = append(floor[j], d)
		}
		seen = created.Load()
	}
	for i := range out {
		SortDurations(out[i])
		SortDurations(floor[i])
	}
	return out, floor, int(created.Load()), nil
}

func switchAndSelectTenant(ctx context.Context, conn *pgx.Conn, t *tenancy.Tenant) (time.Duration, error) {
	start := time.Now()
	if _, err := conn.Exec(ctx, "RESET ROLE; SET ROLE "+pgx.Identifier{t.Role}.Sanitize()+"; SET search_path = "+pgx.Identifier{t.Schema}.Sanitize()); err != nil {
		return 0, err
	}
	var note string
	if err := conn.QueryRow(ctx, pointSQL, pgx.QueryExecModeExec, int64(1)).Scan(&note); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// LoginMemory is what a backend of one login cost after serving tenants.
type LoginMemory struct {
	Login string
	// Tenants is how many tenants the backend served: every tenant of the
	// login, up to the limit given.
	Tenants int
	// Before and After are the backend's private memory in bytes
	// (Anonymous of /proc/<pid>/smaps_rollup: what the backend allocated
	// for itself, shared buffers excluded), fresh and after serving the
	// tenants.
	Before, After int64
	// ContextsBefore and ContextsAfter are the same for a superuser backend
	// doing the same switches, as pg_backend_memory_contexts counts them
	// (memory PostgreSQL allocated, caches included; readable by superusers
	// only on PostgreSQL 15, hence the other backend).
	ContextsBefore, ContextsAfter int64
}

// LoginBackendMemory opens a backend as the login of shard 0 with shards
// gateway shards (1: the gateway), switches it to each of that login's
// tenants in turn (up to limit) with a point select each, as a pooled
// connection cycling through them would, and reads its private memory from
// /proc. The server must run on this machine and /proc/<pid>/smaps_rollup
// of its processes must be readable (root, or the server's OS user).
func (e *Env) LoginBackendMemory(ctx context.Context, shards, limit int) (*LoginMemory, error) {
	if err := e.checkShards([]int{shards}); err != nil {
		return nil, err
	}
	login := tenancy.GatewayShardRole(e.Dep.DB.GatewayRole, 0, shards)
	dsn, err := e.loginDSN(login)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	pid := conn.PgConn().PID()
	m := &LoginMemory{Login: login}
	if m.Before, err = privateMemory(pid); err != nil {
		return nil, err
	}
	for _, t := range e.Tenants {
		if m.Tenants >= limit {
			break
		}
		if e.LoginFor(shards, t) != login {
			continue
		}
		if _, err := switchAndSelectTenant(ctx, conn, t); err != nil {
			return nil, err
		}
		m.Tenants++
	}
	if m.After, err = privateMemory(pid); err != nil {
		return nil, err
	}
	su, err := pgx.Connect(ctx, e.Dep.DB.SuperDSN)
	if err != nil {
		return nil, err
	}
	defer su.Close(context.WithoutCancel(ctx))
	const q = "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts"
	if err := su.QueryRow(ctx, q).Scan(&m.ContextsBefore); err != nil {
		return nil, err
	}
	done := 0
	for _, t := range e.Tenants {
		if done >= m.Tenants {
			break
		}
		if e.LoginFor(shards, t) != login {
			continue
		}
		if _, err := switchAndSelectTenant(ctx, su, t); err != nil {
			return nil, err
		}
		done++
	}
	if _, err := su.Exec(ctx, "RESET ROLE"); err != nil {
		return nil, err
	}
	if err := su.QueryRow(ctx, q).Scan(&m.ContextsAfter); err != nil {
		return nil, err
	}
	return m, nil
}

// privateMemory returns the anonymous memory of process pid, in bytes: its
// own heap, without the shared memory (shared buffers) it touched, which
// smaps counts as private while no other process maps the pages.
func privateMemory(pid uint32) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the backend's memory (the server must run on this machine): %w", err)
	}
	var total int64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "Anonymous:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			total += kb * 1024
		}
	}
	return total, nil
}
