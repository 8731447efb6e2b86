package migrate_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// BenchmarkFanOut fans a trivial migration (add a column and an index on it)
// out to 1,000 and 10,000 tenants at parallelism 1, 4 and 8, and runs the same
// DDL as a bare loop over the schemas with no bookkeeping (no transaction
// control, lock, version table, catalog or ledger: the floor) in the same
// iteration, alternating which goes first, each on its own copy of the
// tenant schemas. It reports both times and their
// ratio (ns/op is their sum) and, when the server is local, the CPU time the
// database backends spent per tenant in each (from /proc/<pid>/schedstat),
// which the load of other processes on the machine disturbs far less than
// wall time.
//
// Each iteration applies a new version (column cN for bulkhead, fN for the
// floor), so no reset is needed between runs. Run it once per configuration:
//
//	go test -run '^$' -bench FanOut -benchtime 1x -count 3 -timeout 60m ./migrate/
//
// Setup is not timed and is cheap on purpose: the tenant schemas are created
// directly (as the owner role, 250 per transaction, 4 at a time) with a tiny
// table and a version table at version 1, and their catalog rows are inserted
// in one statement, instead of through provision.Create (which would also
// create a role per tenant and take minutes for 10,000).
//
// BULKHEAD_BENCH_ROWS=N gives every tenant's table N rows, so the index build
// weighs more against the fixed bookkeeping (not set in CI; benchmarks do not
// run there).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			// One set of schemas per contender (two databases on one server),
			// so neither runs on tables the other has just altered: a run
			// right after the other's on the same tables measured up to 3x
			// slower, whichever went second.
			floor, ours := benchFixture(b, n, "floor"), benchFixture(b, n, "bulkhead")
			for _, par := range []int{1, 4, 8} {
				b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) { runFanOut(b, floor, ours, par) })
			}
		})
	}
}

type fanFixture struct {
	d       *isotest.Deployment
	schemas []string
	owner   string
	version int64 // the last version applied (bulkhead) / column index (floor)
	iter    int   // iterations so far, to alternate which mode goes first
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*fanFixture{}
)

func benchFixture(b *testing.B, n int, name string) *fanFixture {
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	key := fmt.Sprintf("%s/%d", name, n)
	if f, ok := fixtures[key]; ok {
		return f
	}
	start := time.Now()
	ctx := context.Background()
	rows := 0
	if v := os.Getenv("BULKHEAD_BENCH_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			b.Fatalf("BULKHEAD_BENCH_ROWS=%q: %v", v, err)
		}
	}
	srv := isotest.SharedServer(b)
	d, err := isotest.StartDeployment(ctx, srv, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Dropped when the test binary's server goes (isotest.Main).
	f := &fanFixture{d: d, owner: tenancy.Naming{Prefix: d.DB.Prefix}.OwnerRole(), version: 1}
	ids := make([]string, n)
	keys := make([]string, n)
	f.schemas = make([]string, n)
	naming := tenancy.Naming{Prefix: d.DB.Prefix}
	for i := range n {
		k := tenancy.NewKey()
		ids[i], keys[i], f.schemas[i] = fmt.Sprintf("bench-%05d", i), string(k), naming.Schema(k)
	}
	const batch = 250
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make(chan error, n/batch+1)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		wg.Add(1)
		sem <- struct{}{}
		go func(schemas []string) {
			defer wg.Done()
			defer func() { <-sem }()
			tx, err := d.Admin.Begin(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			sql := "SET LOCAL ROLE " + pgx.Identifier{f.owner}.Sanitize() + ";"
			for _, s := range schemas {
				q := pgx.Identifier{s}.Sanitize()
				sql += "CREATE SCHEMA " + q + ";" +
					"CREATE TABLE " + q + ".items (id bigint PRIMARY KEY, note text);" +
					"CREATE TABLE " + q + ".bulkhead_migrations (version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());" +
					"INSERT INTO " + q + ".bulkhead_migrations (version, name, checksum) VALUES (1, 'items', '" + benchV1.Checksum + "');"
				if rows > 0 {
					sql += fmt.Sprintf("INSERT INTO %s.items SELECT g, md5(g::text) FROM generate_series(1, %d) g;", q, rows)
				}
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				errs <- err
				return
			}
			errs <- tx.Commit(ctx)
		}(f.schemas[lo:hi])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.Admin.Exec(ctx, `INSERT INTO bulkhead.tenants (id, key, status, schema_name, role_name, schema_version)
		SELECT i, k, 'active', s, s, 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS u (i, k, s)`, ids, keys, f.schemas); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d tenant schemas with %d rows each in %s", n, rows, time.Since(start).Round(time.Millisecond))
	fixtures[key] = f
	return f
}

var benchV1 = func() *migrate.Migration {
	ms, err := migrate.Load(files("0001_items.up.sql", "CREATE TABLE items (id bigint PRIMARY KEY, note text);"))
	if err != nil {
		panic(err)
	}
	return ms[0]
}()

// benchFiles returns versions 1..upTo: version k > 1 adds column ck and an index on it.
func benchFiles(upTo int64) fstest.MapFS {
	out := fstest.MapFS{"0001_items.up.sql": {Data: []byte("CREATE TABLE items (id bigint PRIMARY KEY, note text);")}}
	for k := int64(2); k <= upTo; k++ {
		out[fmt.Sprintf("%04d_c%d.up.sql", k, k)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"ALTER TABLE items ADD COLUMN c%d text NOT NULL DEFAULT ''; CREATE INDEX items_c%d ON items (c%d);", k, k, k))}
	}
	return out
}

func (f *fanFixture) pool(b *testing.B, par int) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(f.d.DB.AdminDSN)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(par + 1)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

func runFanOut(b *testing.B, fl, bh *fanFixture, par int) {
	ctx := context.Background()
	flPool, bhPool := fl.pool(b, par), bh.pool(b, par)
	flCPU, bhCPU := fl.serverCPU(b), bh.serverCPU(b)
	var floor, inl time.Duration
	var floorCPU, inlCPU time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runFloor := func() {
			fl.version++
			v := fl.version
			c0, t0 := flCPU(), time.Now()
			if err := fl.floor(ctx, flPool, par, v); err != nil {
				b.Fatal(err)
			}
			floor += time.Since(t0)
			floorCPU += flCPU() - c0
		}
		runOurs := func() {
			bh.version++
			v := bh.version
			m, err := migrate.New(bhPool, benchFiles(v), &migrate.Config{Naming: tenancy.Naming{Prefix: bh.d.DB.Prefix}, Parallelism: par})
			if err != nil {
				b.Fatal(err)
			}
			c0, t0 := bhCPU(), time.Now()
			res, err := m.Up(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			inl += time.Since(t0)
			inlCPU += bhCPU() - c0
			if res.Succeeded != len(bh.schemas) {
				b.Fatalf("bulkhead migrated %d of %d tenants", res.Succeeded, len(bh.schemas))
			}
			if n := migrate.Replans(m); n != 0 {
				b.Fatalf("%d steps were re-planned; the fast path is one round trip per tenant", n)
			}
		}
		bh.iter++
		if bh.iter%2 == 0 {
			runFloor()
			runOurs()
		} else {
			runOurs()
			runFloor()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	per := func(d time.Duration) float64 { return d.Seconds() * 1e3 / n / float64(len(bh.schemas)) }
	b.ReportMetric(floor.Seconds()/n, "floor-s/op")
	b.ReportMetric(inl.Seconds()/n, "bulkhead-s/op")
	b.ReportMetric(inl.Seconds()/floor.Seconds(), "ratio")
	b.ReportMetric(float64(len(bh.schemas))*n/inl.Seconds(), "tenants/s")
	if floorCPU > 0 && inlCPU > 0 {
		b.ReportMetric(per(floorCPU), "floor-cpu-ms/tenant")
		b.ReportMetric(per(inlCPU), "bulkhead-cpu-ms/tenant")
		b.ReportMetric(per(inlCPU)/per(floorCPU), "cpu-ratio")
	}
}

// serverCPU returns a function summing the CPU time of every backend
// connected to the fixture's database (client backends only: autovacuum
// workers come and go; from /proc/<pid>/schedstat, the
// server is local), or returning 0 when that cannot be read.
func (f *fanFixture) serverCPU(b *testing.B) func() time.Duration {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.d.DB.SuperDSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	return func() time.Duration {
		rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
		if err != nil {
			b.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			b.Fatal(err)
		}
		var sum time.Duration
		for _, pid := range pids {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
			if err != nil {
				return 0
			}
			var ns int64
			fmt.Sscan(string(raw), &ns)
			sum += time.Duration(ns)
		}
		return sum
	}
}

// floor runs version v's DDL (on columns fv) over every schema with par
// connections: one round trip per schema, as the owner, nothing else.
func (f *fanFixture) floor(ctx context.Context, pool *pgxpool.Pool, par int, v int64) error {
	next := make(chan string)
	errs := make(chan error, par)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{f.owner}.Sanitize()); err != nil {
				errs <- err
				return
			}
			defer conn.Exec(ctx, "RESET ROLE") //nolint:errcheck
			for s := range next {
				q := pgx.Identifier{s}.Sanitize()
				if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.items ADD COLUMN f%d text NOT NULL DEFAULT ''; CREATE INDEX items_f%d ON %s.items (f%d);", q, v, v, q, v)); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	for _, s := range f.schemas {
		next <- s
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}
