// Command loadgen is the load run of the reference licensing server (not a
// CI test): it starts a throwaway PostgreSQL, provisions -tenants tenants
// with sample data, serves the same handlers three ways on loopback
// listeners and drives -clients concurrent HTTP clients (spread evenly over
// the tenants) against read and write endpoints of each in turn:
//
//   - SessionRole: the bulkhead router, SessionRole mode (the default);
//   - TxLocal: the bulkhead router, TxLocal mode;
//   - ceiling: no tenant routing at all, a plain pgxpool per tenant with
//     search_path fixed at connect time (see server.CeilingStore).
//
// Rounds are interleaved (SessionRole, TxLocal, ceiling, then rotated) so
// machine noise hits every variant alike; each variant's throughput is
// compared with the ceiling's in the same round and the median ratio
// reported. Every response is checked: any non-2xx answer or transport
// error is an error, and any row carrying another tenant's marker is a
// cross-tenant row. The run is bounded by -rounds x -duration per variant
// and by -max-requests per round.
//
//	go run ./examples/licensing/cmd/loadgen -clients 100 -tenants 10 -duration 8s -rounds 5
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/examples/licensing/internal/server"
	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

var (
	clients     = flag.Int("clients", 100, "concurrent HTTP clients")
	nTenants    = flag.Int("tenants", 10, "tenants (clients are spread evenly)")
	duration    = flag.Duration("duration", 10*time.Second, "length of one round")
	rounds      = flag.Int("rounds", 3, "rounds per variant, interleaved")
	maxRequests = flag.Int64("max-requests", 2_000_000, "stop a round after this many requests")
	writePct    = flag.Int("write-pct", 20, "percentage of write requests")
	conns       = flag.Int("conns", 20, "database connections per variant (router pool; ceiling: split over the tenants)")
	brands      = flag.Int("brands", 20, "seeded brands per tenant (two agreements each)")
	cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of the rounds to this file")
)

// variant is one way of serving the handlers.
type variant struct {
	name string
	url  string
}

type tenantData struct {
	id       tenancy.ID
	token    string
	marker   string
	brandIDs []string
}

// result is one round of one variant.
type result struct {
	n, errs, leaks int64
	lat            []time.Duration
	elapsed        time.Duration
	firstErr       string
}

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func run() error {
	flag.Parse()
	if *clients < 1 || *nTenants < 1 || *rounds < 1 || *duration <= 0 || *duration > 10*time.Minute {
		return errors.New("need -clients >= 1, -tenants >= 1, -rounds >= 1 and 0 < -duration <= 10m")
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	srv, err := isotest.StartServer(ctx, &isotest.ServerOpts{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer srv.Close()
	pool := func(c *pgxpool.Config) { c.MaxConns = int32(*conns) }
	metrics := server.NewMetrics()
	d, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations(),
		Router: router.Config{Tracer: metrics, ConfigurePool: pool}})
	if err != nil {
		return err
	}
	defer d.Close(context.Background())
	txMetrics := server.NewMetrics()
	txRouter, err := router.New(ctx, d.DB.GatewayDSN, &router.Config{Mode: router.TxLocal, Tracer: txMetrics, ConfigurePool: pool})
	if err != nil {
		return err
	}
	defer txRouter.Close()
	// A larger admin pool than the deployment's default: every write records
	// an audit event on it, in every variant alike.
	acfg, err := pgxpool.ParseConfig(d.DB.AdminDSN)
	if err != nil {
		return err
	}
	acfg.MaxConns = int32(*conns)
	admin, err := pgxpool.NewWithConfig(ctx, acfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	pcfg := d.Provisioner.Config()
	prov, err := provision.New(admin, &pcfg)
	if err != nil {
		return err
	}

	keys, err := server.NewKeys([]byte("loadgen-master-secret-loadgen-master-secret"))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "provisioning %d tenants with %d brands each...\n", *nTenants, *brands)
	var tenants []*tenantData
	var recs []*tenancy.Tenant
	for i := range *nTenants {
		id := tenancy.ID(fmt.Sprintf("lt-%02d", i))
		t, err := server.Seed(ctx, prov, server.RouterStore{R: d.Router}, id, string(id), *brands)
		if err != nil {
			return err
		}
		recs = append(recs, t)
		tok, err := keys.Mint(server.MintOpts{Tenant: id, Subject: "load", Roles: []server.Role{server.RoleAdmin}, TTL: time.Hour})
		if err != nil {
			return err
		}
		tenants = append(tenants, &tenantData{id: id, token: tok, marker: "confidential " + string(id) + " brand"})
	}
	ceiling, err := server.NewCeilingStore(ctx, d.DB.SuperDSN, recs, int32(max(1, (*conns+*nTenants-1) / *nTenants)))
	if err != nil {
		return err
	}
	defer ceiling.Close()

	var variants []variant
	for _, v := range []struct {
		name  string
		r     *router.Router
		m     *server.Metrics
		store server.Store
	}{
		{"SessionRole", d.Router, metrics, nil},
		{"TxLocal", txRouter, txMetrics, nil},
		{"ceiling (no routing)", d.Router, server.NewMetrics(), ceiling},
	} {
		s, err := server.New(server.Config{Provisioner: prov, Router: v.r, Admin: admin, Keys: keys, Metrics: v.m, Store: v.store, Logger: quiet, SizeRefresh: -1})
		if err != nil {
			return err
		}
		s.Start()
		defer s.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: s}
		go hs.Serve(ln) //nolint:errcheck // closed below
		defer hs.Close()
		variants = append(variants, variant{name: v.name, url: "http://" + ln.Addr().String()})
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 4 * *clients, MaxIdleConnsPerHost: 4 * *clients}}
	// Learn each tenant's brand ids (for GET by id) through the routed server.
	for _, t := range tenants {
		var out struct {
			Items []struct{ ID string } `json:"items"`
		}
		if err := call(client, variants[0].url, t, "GET", "/api/v1/brands?limit=100", nil, &out); err != nil {
			return err
		}
		for _, it := range out.Items {
			t.brandIDs = append(t.brandIDs, it.ID)
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res := map[string][]*result{}
	var seq atomic.Int64
	for round := range *rounds {
		// Rotate the order each round so no variant always runs first.
		order := append(slices.Clone(variants[round%len(variants):]), variants[:round%len(variants)]...)
		for _, v := range order {
			r := drive(client, v, tenants, &seq)
			res[v.name] = append(res[v.name], r)
			fmt.Fprintf(os.Stderr, "round %d %-22s %8d req %8.0f req/s p50 %6.2fms p95 %6.2fms errors %d cross-tenant rows %d %s\n",
				round+1, v.name, r.n, r.rps(), ms(r.pct(.5)), ms(r.pct(.95)), r.errs, r.leaks, r.firstErr)
		}
	}

	// Final sweep: every tenant pages through all its brands; none may carry
	// another tenant's marker.
	var sweepLeaks, sweepRows int
	for _, t := range tenants {
		for off := 0; ; off += 100 {
			var out struct {
				Items []struct{ Description string } `json:"items"`
			}
			if err := call(client, variants[0].url, t, "GET", fmt.Sprintf("/api/v1/brands?limit=100&offset=%d", off), nil, &out); err != nil {
				return err
			}
			for _, it := range out.Items {
				sweepRows++
				if it.Description != t.marker {
					sweepLeaks++
				}
			}
			if len(out.Items) < 100 {
				break
			}
		}
	}

	fmt.Printf("\n%d clients over %d tenants, %d%% writes, %d interleaved rounds of %s per variant, %d DB connections per variant.\n",
		*clients, *nTenants, *writePct, *rounds, *duration, *conns)
	fmt.Println("Throughput: median round. Latency: all rounds pooled. Ratio: median over rounds of the variant's")
	fmt.Println("req/s divided by the ceiling's req/s in the same round (adjacent in time).")
	fmt.Println()
	fmt.Println("| variant | requests | req/s (median round) | p50 | p95 | p99 | req/s vs ceiling (median of per-round ratios) | errors | cross-tenant rows |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	ceilRounds := res[variants[len(variants)-1].name]
	for _, v := range variants {
		rs := res[v.name]
		pooled := &result{}
		var ratios []float64
		for i, r := range rs {
			pooled.n += r.n
			pooled.errs += r.errs
			pooled.leaks += r.leaks
			pooled.lat = append(pooled.lat, r.lat...)
			ratios = append(ratios, r.rps()/ceilRounds[i].rps())
		}
		slices.Sort(pooled.lat)
		slices.Sort(ratios)
		fmt.Printf("| %s | %d | %.0f | %.1f ms | %.1f ms | %.1f ms | %.2f× (rounds: %s) | %d | %d |\n", v.name, pooled.n, median(rs).rps(),
			ms(pooled.pct(.5)), ms(pooled.pct(.95)), ms(pooled.pct(.99)), ratios[len(ratios)/2], fmtRatios(ratios), pooled.errs, pooled.leaks)
	}
	fmt.Printf("\nfinal sweep: %d brand rows read back through the router, %d cross-tenant\n", sweepRows, sweepLeaks)
	return nil
}

func fmtRatios(rs []float64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.2f", r))
	}
	return strings.Join(parts, " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(rs []*result) *result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b *result) int {
		switch {
		case a.rps() < b.rps():
			return -1
		case a.rps() > b.rps():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// drive runs one round against v and returns what it saw.
func drive(client *http.Client, v variant, tenants []*tenantData, seq *atomic.Int64) *result {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var n atomic.Int64
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tenants[c%len(tenants)]
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			var lat []time.Duration
			var errs, leaks int64
			firstErr := ""
			for time.Now().Before(deadline) && n.Add(1) <= *maxRequests {
				t0 := time.Now()
				l, err := request(client, v.url, t, rng, seq)
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
				leaks += int64(l)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			res.leaks += leaks
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = int64(len(res.lat))
	slices.Sort(res.lat)
	return res
}

// request sends one request of the mix and returns the number of rows in
// the answer that belong to another tenant.
func request(client *http.Client, base string, t *tenantData, rng *rand.Rand, seq *atomic.Int64) (int, error) {
	leaks := 0
	check := func(desc string) {
		if desc != t.marker {
			leaks++
		}
	}
	p := rng.IntN(100)
	switch {
	case p < *writePct/2:
		var b struct{ Description string }
		body := map[string]any{"name": fmt.Sprintf("load %d", seq.Add(1)), "description": t.marker}
		err := call(client, base, t, "POST", "/api/v1/brands", body, &b)
		check(b.Description)
		return leaks, err
	case p < *writePct:
		var b struct{ Description string }
		id := t.brandIDs[rng.IntN(len(t.brandIDs))]
		err := call(client, base, t, "PATCH", "/api/v1/brands/"+id, map[string]any{"description": t.marker}, &b)
		check(b.Description)
		return leaks, err
	case p < *writePct+(100-*writePct)/3:
		var b struct{ Description string }
		err := call(client, base, t, "GET", "/api/v1/brands/"+t.brandIDs[rng.IntN(len(t.brandIDs))], nil, &b)
		check(b.Description)
		return leaks, err
	case p < *writePct+2*(100-*writePct)/3:
		var out struct {
			Items []struct{ Description string } `json:"items"`
		}
		err := call(client, base, t, "GET", "/api/v1/brands?limit=20&offset="+fmt.Sprint(rng.IntN(len(t.brandIDs))), nil, &out)
		for _, it := range out.Items {
			check(it.Description)
		}
		return leaks, err
	default:
		var out struct {
			Items []struct{ Title string } `json:"items"`
		}
		err := call(client, base, t, "GET", "/api/v1/agreements?limit=10&territory=DE", nil, &out)
		for _, it := range out.Items {
			if !strings.HasPrefix(it.Title, string(t.id)+" ") {
				leaks++
			}
		}
		return leaks, err
	}
}

func call(client *http.Client, base string, t *tenantData, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	return json.Unmarshal(raw, out)
}
