package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// TestRandomTenantsConcurrently: 100 tenants, 16 goroutines doing reads and
// writes for random tenants on a pool much smaller than the tenant count, so
// connections change tenant constantly. Every row read must carry the
// tenant's own marker, and no connection may be left checked out.
func TestRandomTenantsConcurrently(t *testing.T) {
	t.Parallel()
	const tenants, workers = 100, 16
	duration := 3 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	d := newDeployment(t, router.Config{})
	ids := make([]tenancy.ID, tenants)
	for i := range ids {
		ids[i] = d.NewTenant(t, nil).ID
	}
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRouter(t, d, router.Config{Mode: mode, MaxConnsPerTenant: 4, ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = 8 }})
			ctx := ctxT(t)
			var ops, wrong, failed atomic.Int64
			var firstErr sync.Once
			var errMsg string
			deadline := time.Now().Add(duration)
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						id := ids[rand.IntN(tenants)]
						err := r.InTx(ctx, id, func(tx pgx.Tx) error {
							if rand.IntN(2) == 0 {
								_, err := tx.Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, $2)", string(id), mode.String())
								return err
							}
							rows, err := tx.Query(ctx, "SELECT owner FROM items ORDER BY id DESC LIMIT 20")
							if err != nil {
								return err
							}
							owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
							for _, o := range owners {
								if o != string(id) {
									wrong.Add(1)
								}
							}
							return err
						})
						ops.Add(1)
						if err != nil {
							failed.Add(1)
							firstErr.Do(func() { errMsg = err.Error() })
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("%s: %d operations in %s", mode, ops.Load(), duration)
			require.Zero(t, wrong.Load(), "rows of another tenant were returned")
			require.Zero(t, failed.Load(), "first error: %s", errMsg)
			require.Greater(t, ops.Load(), int64(workers))
			st := r.Stat()
			require.Zero(t, st.Pool.AcquiredConns(), "connections left checked out")
			require.Zero(t, st.BusyTenants, "tenant slots left held")
		})
	}
	// Every tenant's table holds only its own rows, checked as the superuser.
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	for _, id := range ids {
		tn, err := d.Provisioner.Get(ctx, id)
		require.NoError(t, err)
		var foreign int
		require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE owner <> $1", pgx.Identifier{tn.Schema, "items"}.Sanitize()), string(id)).Scan(&foreign))
		require.Zero(t, foreign, "tenant %s has rows written for another tenant", id)
	}
}
