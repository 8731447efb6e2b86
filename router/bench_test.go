package router_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-go/bulkhead/internal/routebench"
	"github.com/bulkhead-go/bulkhead/isotest"
)

// benchEnv is one deployment with 100 tenants shared by the benchmarks.
var benchEnv struct {
	once sync.Once
	env  *routebench.Env
	err  error
}

func setupBench(b *testing.B) *routebench.Env {
	b.Helper()
	benchEnv.once.Do(func() {
		srv := isotest.SharedServer(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		benchEnv.env, benchEnv.err = routebench.Setup(ctx, srv, routebench.SetupOpts{Tenants: 100, Workers: 2})
	})
	if benchEnv.err != nil {
		b.Fatal(benchEnv.err)
	}
	return benchEnv.env
}

// BenchmarkRouting runs one point select by primary key per operation for a
// random tenant out of 100 (uniform), with 16 goroutines on pools of 16
// connections: the raw pool with schema-qualified SQL (the ceiling), each
// bulkhead mode, and the naive peers. Compare ns/op across sub-benchmarks of
// one run; cmd/bulkhead-bench interleaves designs over rounds and prints
// ratios, percentiles and CPU per operation.
//
//	go test -run '^$' -bench Routing -benchtime 2s ./router/
func BenchmarkRouting(b *testing.B) {
	env := setupBench(b)
	for _, name := range routebench.DesignNames {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			d, err := env.NewDesign(ctx, name, routebench.DesignOpts{PoolSize: 16})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			n := len(env.Tenants)
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := d.Op(ctx, rand.IntN(n), int64(rand.IntN(routebench.Rows))+1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
