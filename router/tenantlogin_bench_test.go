package router_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// The TenantLogin benchmarks compare, in one run, a raw pgxpool (as the
// admin, schema-qualified SQL: the ceiling) with TenantLogin routing, at 100
// active tenants, for the same point query. Run them interleaved:
//
//	go test -run '^$' -bench 'TenantLogin' -count 5 -benchtime 3s ./router/
//
// budget=100 gives every active tenant one connection (as many as the raw
// pool has); budget=32 makes the tenants share fewer connections than there
// are tenants, so pools are evicted and connections re-made constantly.

const benchTenants = 100

var benchSetup struct {
	once    sync.Once
	err     error
	d       *isotest.Deployment
	creds   tenancy.Credentials
	tenants []*tenancy.Tenant
}

func benchDeployment(b *testing.B) {
	b.Helper()
	benchSetup.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		secret := make([]byte, 32)
		_, _ = crand.Read(secret)
		creds, err := tenancy.NewDerivedCredentials(secret)
		if err != nil {
			benchSetup.err = err
			return
		}
		benchSetup.creds = creds
		d, err := isotest.StartDeployment(ctx, isotest.SharedServer(b), &isotest.DeploymentOpts{Migrations: testMigrations, Credentials: creds})
		if err != nil {
			benchSetup.err = err
			return
		}
		benchSetup.d = d
		for i := range benchTenants {
			tn, err := d.Provisioner.Create(ctx, tenancy.ID(fmt.Sprintf("bench-%03d", i)), nil)
			if err != nil {
				benchSetup.err = err
				return
			}
			benchSetup.tenants = append(benchSetup.tenants, tn)
			if _, err := d.Admin.Exec(ctx, "INSERT INTO "+pgx.Identifier{tn.Schema, "items"}.Sanitize()+" (owner, note) SELECT $1, 'n' || g FROM generate_series(1, 100) g", string(tn.ID)); err != nil {
				benchSetup.err = err
				return
			}
		}
	})
	if benchSetup.err != nil {
		b.Fatalf("bench setup: %v", benchSetup.err)
	}
}

func BenchmarkTenantLogin(b *testing.B) {
	benchDeployment(b)
	d, tenants := benchSetup.d, benchSetup.tenants
	ctx := context.Background()
	const conns = 100

	b.Run("raw", func(b *testing.B) {
		pc, err := pgxpool.ParseConfig(d.DB.AdminDSN)
		if err != nil {
			b.Fatal(err)
		}
		pc.MaxConns = conns
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		sqls := make([]string, len(tenants))
		for i, tn := range tenants {
			sqls[i] = "SELECT note FROM " + pgx.Identifier{tn.Schema, "items"}.Sanitize() + " WHERE id = $1"
		}
		// Warm up before timing: open every connection and prepare every
		// tenant's statement on each (pgx's statement cache), as a long-running
		// raw pool would have them.
		var warm []*pgxpool.Conn
		for range conns {
			c, err := pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			warm = append(warm, c)
		}
		for _, c := range warm {
			batch := &pgx.Batch{}
			for _, q := range sqls {
				batch.Queue(q, 1)
			}
			if err := c.SendBatch(ctx, batch).Close(); err != nil {
				b.Fatal(err)
			}
			c.Release()
		}
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var note string
			for pb.Next() {
				i := rand.IntN(len(tenants))
				if err := pool.QueryRow(ctx, sqls[i], 1+rand.IntN(100)).Scan(&note); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, budget := range []int{100, 32} {
		b.Run(fmt.Sprintf("budget=%d", budget), func(b *testing.B) {
			r, err := router.New(ctx, d.DB.GatewayDSN, &router.Config{Mode: router.TenantLogin, Credentials: benchSetup.creds, MaxConns: budget, MaxConnsPerTenant: 4, AcquireTimeout: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			// Warm up: one pool and connection per tenant (as many as the
			// budget holds) before timing.
			for _, tn := range tenants {
				c, err := r.Acquire(ctx, tn.ID)
				if err != nil {
					b.Fatal(err)
				}
				c.Release()
			}
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var note string
				for pb.Next() {
					tn := tenants[rand.IntN(len(tenants))]
					c, err := r.Acquire(ctx, tn.ID)
					if err != nil {
						b.Error(err)
						return
					}
					err = c.QueryRow(ctx, "SELECT note FROM items WHERE id = $1", 1+rand.IntN(100)).Scan(&note)
					c.Release()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := r.TenantPoolStat()
			b.ReportMetric(float64(st.Created), "pools")
			b.ReportMetric(float64(st.MaxConns), "maxconns")
		})
	}
}

// BenchmarkTenantLoginRatio measures TenantLogin's throughput as a ratio of
// the raw pool's in the same process, in alternating rounds (ABBA...), which
// a shared, noisy machine needs. It ignores b.N; run it once:
//
//	go test -run '^$' -bench TenantLoginRatio -benchtime 1x ./router/
//
// $BULKHEAD_BENCH_ROUNDS (default 6) and $BULKHEAD_BENCH_ROUND (default 2s)
// set the rounds, $BULKHEAD_BENCH_BUDGET (default 100, the raw pool's size)
// TenantLogin's MaxConns. It reports the median ratio (TenantLogin ops / raw
// ops). CI runs no benchmark.
func BenchmarkTenantLoginRatio(b *testing.B) {
	benchDeployment(b)
	d, tenants := benchSetup.d, benchSetup.tenants
	ctx := context.Background()
	const conns, workers = 100, 16
	rounds, round := 6, 2*time.Second
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := time.ParseDuration(os.Getenv("BULKHEAD_BENCH_ROUND")); err == nil && v > 0 {
		round = v
	}
	budget := conns
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_BUDGET")); err == nil && v > 0 {
		budget = v
	}

	pc, err := pgxpool.ParseConfig(d.DB.AdminDSN)
	if err != nil {
		b.Fatal(err)
	}
	pc.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	sqls := make([]string, len(tenants))
	for i, tn := range tenants {
		sqls[i] = "SELECT note FROM " + pgx.Identifier{tn.Schema, "items"}.Sanitize() + " WHERE id = $1"
	}
	r, err := router.New(ctx, d.DB.GatewayDSN, &router.Config{Mode: router.TenantLogin, Credentials: benchSetup.creds, MaxConns: budget, MaxConnsPerTenant: 4, AcquireTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()

	raw := func() error {
		i := rand.IntN(len(tenants))
		var note string
		return pool.QueryRow(ctx, sqls[i], 1+rand.IntN(100)).Scan(&note)
	}
	routed := func() error {
		tn := tenants[rand.IntN(len(tenants))]
		c, err := r.Acquire(ctx, tn.ID)
		if err != nil {
			return err
		}
		defer c.Release()
		var note string
		return c.QueryRow(ctx, "SELECT note FROM items WHERE id = $1", 1+rand.IntN(100)).Scan(&note)
	}
	run := func(op func() error, dur time.Duration) float64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		deadline := time.Now().Add(dur)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / dur.Seconds()
	}
	// Warm-up: every connection, every statement cache.
	run(raw, round)
	run(routed, round)

	var ratios []float64
	for i := range rounds {
		var rawOps, tlOps float64
		if i%2 == 0 {
			rawOps, tlOps = run(raw, round), run(routed, round)
		} else {
			tlOps, rawOps = run(routed, round), run(raw, round)
		}
		ratios = append(ratios, tlOps/rawOps)
		b.Logf("round %d: raw %.0f ops/s, TenantLogin %.0f ops/s, ratio %.2f", i+1, rawOps, tlOps, tlOps/rawOps)
	}
	sort.Float64s(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	b.ReportMetric(median, "ratio-median")
	b.ReportMetric(ratios[0], "ratio-min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
	st := r.TenantPoolStat()
	b.ReportMetric(float64(st.MaxConns), "maxconns")
	b.Logf("tenant pools: %+v", st)
}
