// Command bulkhead-bench runs the routing load benchmark: the raw pool (the
// ceiling), every bulkhead mode and the naive peers, interleaved on one
// database in one run, and prints Markdown tables of throughput ratios to raw,
// latency percentiles and CPU per operation. It also reports how long
// provision.Create took as the tenant count grew.
//
//	go run ./cmd/bulkhead-bench -tenants 100,10000 -goroutines 16,64 -rounds 5
//
// It starts a throwaway PostgreSQL (see isotest) unless BULKHEAD_TEST_DSN or
// -dsn names a server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-go/bulkhead/internal/routebench"
	"github.com/bulkhead-go/bulkhead/isotest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bulkhead-bench:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func run() error {
	tenantsF := flag.String("tenants", "100", "comma-separated tenant counts, ascending")
	goroutinesF := flag.String("goroutines", "16,64", "comma-separated goroutine counts")
	distF := flag.String("dist", "uniform,zipf", "comma-separated tenant distributions (uniform, zipf)")
	designsF := flag.String("designs", strings.Join(routebench.DesignNames, ","), "comma-separated designs; raw is always included")
	rounds := flag.Int("rounds", 5, "rounds; designs are interleaved within each round")
	dur := flag.Duration("duration", 2*time.Second, "duration of one design's run in one round")
	poolSize := flag.Int("pool", 16, "MaxConns of every shared pool")
	workers := flag.Int("create-workers", 1, "concurrent provision.Create calls while growing")
	load := flag.Bool("load", true, "run the routing load tables")
	loadAtF := flag.String("load-at", "", "comma-separated tenant counts at which to run the load tables (default: every count in -tenants)")
	stmtMem := flag.Bool("stmtmem", true, "measure the backend memory of DB's statement cache (one prepared statement per tenant)")
	scale := flag.Bool("scale", true, "measure first-query latency on fresh and just-invalidated backends, and backend memory")
	shards := flag.Int("shards", 0, "provision with this many gateway shards (> 1): the scale tables then compare the single gateway with the shard logins, and the -sharded designs can run")
	shardScale := flag.Bool("shard-scale", true, "with -shards: measure single gateway vs shard logins (first query fresh and under provisioning, backend memory)")
	shardSamples := flag.Int("shard-samples", 60, "samples per login kind in the -shards scale tables")
	dsn := flag.String("dsn", os.Getenv("BULKHEAD_TEST_DSN"), "existing server (superuser); default: a throwaway local server")
	flag.Parse()

	tenantCounts, err := ints(*tenantsF)
	if err != nil {
		return fmt.Errorf("-tenants: %w", err)
	}
	gs, err := ints(*goroutinesF)
	if err != nil {
		return fmt.Errorf("-goroutines: %w", err)
	}
	loadAt := tenantCounts
	if *loadAtF != "" {
		if loadAt, err = ints(*loadAtF); err != nil {
			return fmt.Errorf("-load-at: %w", err)
		}
	}
	designsDefault := !flagSet("designs")
	designs := strings.Split(*designsF, ",")
	if designsDefault && *shards < 2 {
		designs = slices.DeleteFunc(designs, func(d string) bool { return strings.HasSuffix(d, "-sharded") })
	}
	if !slices.Contains(designs, "raw") {
		designs = append([]string{"raw"}, designs...)
	}

	ctx := context.Background()
	srv, err := isotest.StartServer(ctx, &isotest.ServerOpts{DSN: *dsn, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer srv.Close()
	env, err := routebench.Setup(ctx, srv, routebench.SetupOpts{Tenants: 0, GatewayShards: *shards})
	if err != nil {
		return err
	}
	defer env.Close(context.Background())

	var pid uint32
	if err := env.Dep.Admin.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return err
	}
	pm := routebench.PostmasterPID(pid)

	host, _ := os.Hostname()
	fmt.Printf("# bulkhead-bench %s\n\nhost %s, %s, pool %d, %d rounds of %s per design, designs interleaved (rotated each round)\n\n",
		time.Now().UTC().Format(time.RFC3339), host, cpuModel(), *poolSize, *rounds, *dur)
	fmt.Printf("command: bulkhead-bench %s\n\n", strings.Join(os.Args[1:], " "))

	prev := 0
	for _, n := range tenantCounts {
		start := time.Now()
		if err := env.Grow(ctx, routebench.SetupOpts{Tenants: n, Workers: *workers, Progress: os.Stderr}); err != nil {
			return fmt.Errorf("provisioning: %w", err)
		}
		fmt.Printf("## %d tenants\n\nprovisioned tenants %d..%d in %s (%d workers)\n\n", n, prev, n-1, time.Since(start).Round(time.Second), *workers)
		printCreates(env.Creates, prev, n)
		prev = n

		if *scale {
			if err := scaleTable(ctx, env, n); err != nil {
				return fmt.Errorf("scale: %w", err)
			}
		}
		if *stmtMem {
			if err := stmtMemTable(ctx, env, n); err != nil {
				return fmt.Errorf("statement memory: %w", err)
			}
		}
		if *shards > 1 && *shardScale {
			if err := shardTable(ctx, env, n, *shardSamples); err != nil {
				return fmt.Errorf("shard scale: %w", err)
			}
		}
		if !*load || !slices.Contains(loadAt, n) {
			continue
		}
		var ds []*routebench.Design
		for _, name := range designs {
			if name == "pool-per-tenant" && n > 1000 {
				fmt.Printf("pool-per-tenant skipped at %d tenants (one login role and pool per tenant)\n\n", n)
				continue
			}
			d, err := env.NewDesign(ctx, name, routebench.DesignOpts{PoolSize: *poolSize})
			if err != nil {
				return fmt.Errorf("design %s: %w", name, err)
			}
			ds = append(ds, d)
		}
		for _, g := range gs {
			for _, dist := range strings.Split(*distF, ",") {
				o := routebench.LoadOpts{Tenants: n, Goroutines: g, Dist: routebench.Dist(dist), Duration: *dur, ServerPID: pm}
				table(ctx, ds, o, *rounds)
			}
		}
		for _, d := range ds {
			d.Close()
		}
	}
	return nil
}

type agg struct {
	ratios     []float64
	tps        []float64
	lats       []time.Duration
	ops        int64
	errs       int64
	firstErr   error
	proc, serv time.Duration
	servOK     bool
}

func table(ctx context.Context, ds []*routebench.Design, o routebench.LoadOpts, rounds int) {
	fmt.Fprintf(os.Stderr, "running %d tenants, %d goroutines, %s\n", o.Tenants, o.Goroutines, o.Dist)
	// Warm up: connect the pools and fill the caches.
	for _, d := range ds {
		w := o
		w.Duration = o.Duration / 4
		routebench.Run(ctx, d.Op, w)
	}
	aggs := make([]agg, len(ds))
	for i := range aggs {
		aggs[i].servOK = true
	}
	for r := range rounds {
		raw := 0.0
		res := make([]routebench.Result, len(ds))
		for k := range ds {
			i := (k + r) % len(ds)
			res[i] = routebench.Run(ctx, ds[i].Op, o)
		}
		raw = res[0].Throughput()
		for i, x := range res {
			a := &aggs[i]
			a.ratios = append(a.ratios, x.Throughput()/raw)
			a.tps = append(a.tps, x.Throughput())
			a.lats = append(a.lats, x.Latencies...)
			a.ops += x.Ops
			a.errs += x.Errors
			if a.firstErr == nil {
				a.firstErr = x.FirstErr
			}
			a.proc += x.ProcCPU
			if x.ServerCPU < 0 {
				a.servOK = false
			}
			a.serv += x.ServerCPU
		}
	}
	fmt.Printf("### %d tenants, %d goroutines, %s\n\n", o.Tenants, o.Goroutines, o.Dist)
	rawExec := -1
	for i, d := range ds {
		if d.Name == "raw-exec" {
			rawExec = i
		}
	}
	fmt.Println("| design | ratio to raw (median) | min–max over rounds | ratio to raw-exec (median) | ops/s (median) | p50 | p95 | p99 | client CPU/op | server CPU/op | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for i, d := range ds {
		a := aggs[i]
		lat := routebench.SortDurations(a.lats)
		serv := "n/a"
		if a.servOK && a.ops > 0 {
			serv = us(a.serv / time.Duration(a.ops))
		}
		proc := "n/a"
		if a.ops > 0 {
			proc = us(a.proc / time.Duration(a.ops))
		}
		errs := strconv.FormatInt(a.errs, 10)
		if a.firstErr != nil {
			errs += " (" + a.firstErr.Error() + ")"
		}
		vsExec := "n/a"
		if rawExec >= 0 {
			r := make([]float64, len(a.tps))
			for k := range r {
				r[k] = a.tps[k] / aggs[rawExec].tps[k]
			}
			vsExec = fmt.Sprintf("%.2f×", median(r))
		}
		fmt.Printf("| %s | %.2f× | %.2f–%.2f | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", d.Name, median(a.ratios),
			slices.Min(a.ratios), slices.Max(a.ratios), vsExec, median(a.tps),
			us(routebench.Percentile(lat, 50)), us(routebench.Percentile(lat, 95)), us(routebench.Percentile(lat, 99)),
			proc, serv, errs)
	}
	fmt.Println()
}

func printCreates(c []time.Duration, from, to int) {
	// Create latency per bucket of existing tenants: the first and last 10%
	// of this growth step, at least 20 samples each.
	n := to - from
	if n <= 0 {
		return
	}
	k := max(min(n, 20), n/10)
	show := func(label string, s []time.Duration) {
		s = routebench.SortDurations(slices.Clone(s))
		fmt.Printf("| %s | %d | %s | %s |\n", label, len(s),
			ms(routebench.Percentile(s, 50)), ms(routebench.Percentile(s, 95)))
	}
	fmt.Println("| provision.Create with existing tenants | n | p50 | p95 |")
	fmt.Println("|---|---|---|---|")
	show(fmt.Sprintf("%d–%d", from, from+k-1), c[from:from+k])
	if n > k {
		show(fmt.Sprintf("%d–%d", to-k, to-1), c[to-k:to])
	}
	fmt.Println()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	model, n := "", 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			n++
			if i := strings.IndexByte(l, ':'); i >= 0 {
				model = strings.TrimSpace(l[i+1:])
			}
		}
	}
	return fmt.Sprintf("%d × %s", n, model)
}

func scaleTable(ctx context.Context, env *routebench.Env, n int) error {
	fresh, err := env.FirstQuery(ctx, 20)
	if err != nil {
		return err
	}
	inval, err := env.AfterInvalidation(ctx, 10)
	if err != nil {
		return err
	}
	fmt.Println("| first switch + point select (gateway, PostgreSQL role-membership cache cold) | n | p50 | p95 |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| fresh backend | %d | %s | %s |\n", len(fresh), ms(routebench.Percentile(fresh, 50)), ms(routebench.Percentile(fresh, 95)))
	fmt.Printf("| warm backend, right after a provision.Create | %d | %s | %s |\n\n", len(inval), ms(routebench.Percentile(inval, 50)), ms(routebench.Percentile(inval, 95)))
	fmt.Println("| backend memory (pg_backend_memory_contexts) | before | after touching one table per tenant |")
	fmt.Println("|---|---|---|")
	ks := []int{}
	for _, k := range []int{100, 1000, n} {
		if k <= n && !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	for _, k := range ks {
		before, after, err := env.BackendMemory(ctx, k)
		if err != nil {
			return err
		}
		fmt.Printf("| %d tenants | %.1f MB | %.1f MB |\n", k, float64(before)/1e6, float64(after)/1e6)
	}
	fmt.Println()
	return nil
}

// stmtMemTable prints what one cached statement per tenant costs a backend
// (router.Config.StatementCacheSize bounds how many a connection keeps).
func stmtMemTable(ctx context.Context, env *routebench.Env, n int) error {
	k := min(n, 256)
	touched, prepared, err := env.StatementMemory(ctx, k)
	if err != nil {
		return err
	}
	fmt.Println("| statement cache (pg_backend_memory_contexts) | tenants | after touching one table each | after one prepared point select each | per statement |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| superuser backend | %d | %.1f MB | %.1f MB | %.1f KB |\n\n", k, float64(touched)/1e6, float64(prepared)/1e6, float64(prepared-touched)/float64(k)/1e3)
	return nil
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// shardTable compares the single gateway (a member of every tenant) with the
// shard logins (each a member of its shard's tenants) on the same tenants.
func shardTable(ctx context.Context, env *routebench.Env, n, samples int) error {
	fmt.Fprintf(os.Stderr, "shard scale at %d tenants\n", n)
	shards := []int{1, env.Shards}
	label := func(s int) string {
		if s == 0 {
			return "superuser (no membership check: the floor)"
		}
		if s == 1 {
			return fmt.Sprintf("single gateway (member of %d tenants)", n)
		}
		return fmt.Sprintf("%d gateway shards (member of ~%d tenants each)", s, n/s)
	}
	fresh, err := env.FirstQueryShards(ctx, samples, append([]int{0}, shards...))
	if err != nil {
		return err
	}
	inval, floor, created, err := env.InvalidatedUnderLoad(ctx, samples, append([]int{0}, shards...))
	if err != nil {
		return err
	}
	fmt.Printf("#### Gateway shards at %d tenants\n\n", n)
	fmt.Println("| first switch + point select | login | n | p50 | p95 | max |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, s := range append([]int{0}, shards...) {
		f := fresh[i]
		fmt.Printf("| fresh backend | %s | %d | %s | %s | %s |\n", label(s), len(f), ms(routebench.Percentile(f, 50)), ms(routebench.Percentile(f, 95)), ms(f[len(f)-1]))
	}
	for i, s := range append([]int{0}, shards...) {
		f := inval[i]
		fmt.Printf("| warm backend, right after a membership change, provisioning running | %s | %d | %s | %s | %s |\n", label(s), len(f), ms(routebench.Percentile(f, 50)), ms(routebench.Percentile(f, 95)), ms(f[len(f)-1]))
	}
	for i, s := range append([]int{0}, shards...) {
		f := floor[i]
		fmt.Printf("| the same switch again at once (caches rebuilt; the load's floor) | %s | %d | %s | %s | %s |\n", label(s), len(f), ms(routebench.Percentile(f, 50)), ms(routebench.Percentile(f, 95)), ms(f[len(f)-1]))
	}
	fmt.Printf("\n(%d tenants provisioned concurrently during the invalidation measurements)\n\n", created)
	fmt.Println("| one backend cycling through every tenant of its login | login | tenants served | private memory, fresh | private memory, after | memory contexts, fresh | memory contexts, after |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, s := range shards {
		m, err := env.LoginBackendMemory(ctx, s, n)
		if err != nil {
			return err
		}
		fmt.Printf("| | %s | %d | %.1f MB | %.1f MB | %.1f MB | %.1f MB |\n", m.Login, m.Tenants, float64(m.Before)/1e6, float64(m.After)/1e6,
			float64(m.ContextsBefore)/1e6, float64(m.ContextsAfter)/1e6)
	}
	fmt.Println("\n(private memory: Anonymous of the login's backend in /proc/<pid>/smaps_rollup, its heap without shared buffers; memory contexts: pg_backend_memory_contexts of a superuser backend doing the same switches and selects)")
	fmt.Println()
	return nil
}
