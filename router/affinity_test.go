package router_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

type switchCounter struct{ switched, total atomic.Int64 }

func (s *switchCounter) TraceAcquire(_ context.Context, d router.AcquireData) {
	s.total.Add(1)
	if d.Switched {
		s.switched.Add(1)
	}
}

// TestAffinity: a tenant gets back the connection that already serves it;
// with the pool exhausted, another tenant takes the least recently parked one
// and it is switched (and reset) on the way.
func TestAffinity(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b, c := d.NewTenant(t, nil), d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			tr := &switchCounter{}
			r := newRouter(t, d, router.Config{Mode: mode, Affinity: -1, Tracer: tr,
				ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = 2 }})
			pid := func(tn *tenancy.Tenant) uint32 {
				var p uint32
				var user string
				require.NoError(t, r.DB(tn.ID).QueryRow(ctx, "SELECT pg_backend_pid(), current_user").Scan(&p, &user))
				require.Equal(t, tn.Role, user)
				return p
			}
			pa, pb := pid(a), pid(b)
			require.NotEqual(t, pa, pb, "the pool had room for a second connection")
			require.Equal(t, 2, r.Stat().Parked)
			n := tr.switched.Load()
			for range 5 {
				require.Equal(t, pa, pid(a))
				require.Equal(t, pb, pid(b))
			}
			require.Equal(t, n, tr.switched.Load(), "no switch for a tenant's own parked connection")
			// Pool exhausted, nothing parked for c: it takes a's (parked
			// longest ago) and switches it.
			require.Equal(t, pa, pid(c))
			require.Equal(t, n+1, tr.switched.Load())
			require.Equal(t, pb, pid(b))
			st := r.Stat()
			require.Equal(t, int32(st.Parked), st.Pool.AcquiredConns(), "only parked connections are held")
		})
	}
}

// TestAffinityConcurrent: many tenants, few connections, parked connections
// taken and stolen concurrently in both modes; every row read is the
// tenant's own, and closing the router returns every connection.
func TestAffinityConcurrent(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	const tenants, workers = 12, 8
	ts := make([]*tenancy.Tenant, tenants)
	for i := range ts {
		ts[i] = d.NewTenant(t, nil)
		plant(t, d.Router, ts[i].ID)
	}
	ctx := ctxT(t)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRouter(t, d, router.Config{Mode: mode, Affinity: 3, MaxConnsPerTenant: 4,
				ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = 4 }})
			var wrong, failed atomic.Int64
			var wg sync.WaitGroup
			deadline := time.Now().Add(time.Second)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						tn := ts[rand.IntN(tenants)]
						var owner string
						var err error
						if mode == router.SessionRole && rand.IntN(2) == 0 {
							var c *router.Conn
							if c, err = r.Acquire(ctx, tn.ID); err == nil {
								err = c.QueryRow(ctx, "SELECT value FROM secrets").Scan(&owner)
								c.Release()
							}
						} else {
							err = r.DB(tn.ID).QueryRow(ctx, "SELECT value FROM secrets").Scan(&owner)
						}
						if err != nil {
							failed.Add(1)
						} else if owner != string(tn.ID) {
							wrong.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			require.Zero(t, wrong.Load())
			require.Zero(t, failed.Load())
			st := r.Stat()
			require.LessOrEqual(t, st.Parked, 3)
			require.Equal(t, int32(st.Parked), st.Pool.AcquiredConns())
			r.Close()
			require.Zero(t, r.Stat().Parked)
		})
	}
}

// TestAffinityHandOff: with every connection checked out, a released
// connection goes to a waiting checkout of the tenant it serves (no switch)
// before older waiters of other tenants; a checkout that gives up waiting
// leaves nothing behind.
func TestAffinityHandOff(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	tr := &switchCounter{}
	r := newRouter(t, d, router.Config{Affinity: -1, Tracer: tr, AcquireTimeout: 200 * time.Millisecond, MaxConnsPerTenant: 2,
		ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = 1 }})
	router.SetHandOffAgeForTest(r, time.Minute)

	held, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	// A checkout that times out while waiting.
	_, err = r.Acquire(ctx, b.ID)
	require.Error(t, err)

	order := make(chan tenancy.ID, 2)
	var wg sync.WaitGroup
	wait := func(tn *tenancy.Tenant) {
		defer wg.Done()
		c, err := r.Acquire(context.Background(), tn.ID)
		if !assert.NoError(t, err) {
			return
		}
		order <- tn.ID
		time.Sleep(10 * time.Millisecond)
		c.Release()
	}
	wg.Add(1)
	go wait(b) // waits first
	time.Sleep(50 * time.Millisecond)
	wg.Add(1)
	go wait(a) // waits second, for the tenant the held connection serves
	time.Sleep(50 * time.Millisecond)
	before := tr.switched.Load()
	held.Release()
	wg.Wait()
	close(order)
	var got []tenancy.ID
	for id := range order {
		got = append(got, id)
	}
	require.Equal(t, []tenancy.ID{a.ID, b.ID}, got, "the connection serving A goes to A's waiter first")
	require.Equal(t, int64(1), tr.switched.Load()-before, "only B's checkout switches")
	require.Zero(t, r.Stat().Pool.AcquiredConns()-int32(r.Stat().Parked), "nothing checked out is left")
}
