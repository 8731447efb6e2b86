package router_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// TestTxLocalBehindPgBouncer: a real PgBouncer in transaction mode between
// the router and PostgreSQL. TxLocal keeps every tenant to its own rows,
// refuses cross-schema access, and stays correct with many tenants on few
// server connections.
func TestTxLocalBehindPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer := isotest.NewPgBouncer(t, &isotest.PgBouncerOpts{PoolSize: 4})
	d := newDeployment(t, router.Config{})
	r := newRouterVia(t, d, router.Config{Mode: router.TxLocal}, bouncer)
	ctx := ctxT(t)

	const tenants, workers = 12, 8
	ids := make([]tenancy.ID, tenants)
	schemas := map[tenancy.ID]string{}
	for i := range ids {
		tn := d.NewTenant(t, nil)
		ids[i], schemas[tn.ID] = tn.ID, tn.Schema
		plant(t, r, tn.ID)
	}

	// The test is meaningful only if the router really is behind a pooler.
	direct := newRouter(t, d, router.Config{})
	require.NoError(t, direct.Check(ctx))
	behind := newRouterVia(t, d, router.Config{}, bouncer)
	require.ErrorIs(t, behind.Check(ctx), router.ErrTransactionPooler)

	var ops, wrong atomic.Int64
	var mu sync.Mutex
	var failures []error
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := ids[rand.IntN(tenants)]
				other := schemas[ids[rand.IntN(tenants)]]
				err := r.InTx(ctx, id, func(tx pgx.Tx) error {
					var user, owner string
					if err := tx.QueryRow(ctx, "SELECT current_user, (SELECT value FROM secrets WHERE id = 1)").Scan(&user, &owner); err != nil {
						return err
					}
					if owner != string(id) {
						wrong.Add(1)
					}
					if _, err := tx.Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, 'bouncer')", string(id)); err != nil {
						return err
					}
					if other != schemas[id] {
						if _, err := tx.Exec(ctx, "SAVEPOINT s"); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, "SELECT value FROM "+pgx.Identifier{other, "secrets"}.Sanitize())
						requireSQLStateNoFatal(&mu, &failures, err, pgerrcode.InsufficientPrivilege)
						if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Empty(t, failures, "pgbouncer log:\n%s", bouncer.Log())
	require.Zero(t, wrong.Load())
	require.Greater(t, ops.Load(), int64(tenants))

	// After the run, every tenant's table holds only its own rows.
	for _, id := range ids {
		require.NoError(t, r.InTx(ctx, id, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "SELECT DISTINCT owner FROM items")
			require.NoError(t, err)
			owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{string(id)}, owners)
			return nil
		}))
	}
}

// newRouterVia opens a router on d's database through bouncer.
func newRouterVia(t *testing.T, d *isotest.Deployment, rc router.Config, bouncer *isotest.PgBouncer) *router.Router {
	t.Helper()
	r, err := router.New(ctxT(t), bouncer.DSN(d.DB.GatewayDSN), &rc)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// requireSQLStateNoFatal records a failure unless err is a PostgreSQL error
// with code (for use in goroutines, where require cannot stop the test).
func requireSQLStateNoFatal(mu *sync.Mutex, failures *[]error, err error, code string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == code {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		*failures = append(*failures, fmt.Errorf("cross-tenant read succeeded, want SQLSTATE %s", code))
		return
	}
	*failures = append(*failures, fmt.Errorf("want SQLSTATE %s, got %w", code, err))
}

// TestSessionRoleRefusesPgBouncer: behind PgBouncer in transaction (and
// statement) mode a SessionRole router refuses every checkout with an error
// that says to use TxLocal; in session mode, where a client keeps its server
// connection, it works.
func TestSessionRoleRefusesPgBouncer(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a := d.NewTenant(t, nil)
	ctx := ctxT(t)
	for _, mode := range []string{"transaction", "statement"} {
		t.Run(mode, func(t *testing.T) {
			bouncer := isotest.NewPgBouncer(t, &isotest.PgBouncerOpts{PoolMode: mode})
			r := newRouterVia(t, d, router.Config{}, bouncer)
			_, err := r.Acquire(ctx, a.ID)
			require.ErrorIs(t, err, router.ErrTransactionPooler)
			var pe *router.PoolerError
			require.ErrorAs(t, err, &pe)
			require.Contains(t, err.Error(), "TxLocal")
			_, err = r.Begin(ctx, a.ID)
			require.ErrorIs(t, err, router.ErrTransactionPooler)
			require.ErrorIs(t, r.Check(ctx), router.ErrTransactionPooler)
			require.Zero(t, r.Pool().Stat().AcquiredConns())
		})
	}
	t.Run("session", func(t *testing.T) {
		bouncer := isotest.NewPgBouncer(t, &isotest.PgBouncerOpts{PoolMode: "session"})
		r := newRouterVia(t, d, router.Config{}, bouncer)
		require.NoError(t, r.Check(ctx))
		conn, err := r.Acquire(ctx, a.ID)
		require.NoError(t, err)
		defer conn.Release()
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n))
	})
}

// TestTxLocalDBBehindPgBouncer: single statements through r.DB in TxLocal
// behind PgBouncer in transaction mode: each pipelined transaction (reset,
// BEGIN, switch, statement, COMMIT, one Sync) lands on whatever server
// connection PgBouncer picks and still sees only its tenant's rows.
func TestTxLocalDBBehindPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer := isotest.NewPgBouncer(t, &isotest.PgBouncerOpts{PoolSize: 3})
	d := newDeployment(t, router.Config{})
	r := newRouterVia(t, d, router.Config{Mode: router.TxLocal}, bouncer)
	ctx := ctxT(t)
	const tenants, workers = 10, 8
	ids := make([]tenancy.ID, tenants)
	roles := map[tenancy.ID]string{}
	for i := range ids {
		tn := d.NewTenant(t, nil)
		ids[i], roles[tn.ID] = tn.ID, tn.Role
		plant(t, r, tn.ID)
	}
	var ops, wrong atomic.Int64
	var mu sync.Mutex
	var failures []error
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := ids[rand.IntN(tenants)]
				var user, owner string
				err := r.DB(id).QueryRow(ctx, "SELECT current_user, (SELECT value FROM secrets WHERE id = 1)").Scan(&user, &owner)
				if err == nil {
					if owner != string(id) || user != roles[id] {
						wrong.Add(1)
					}
					_, err = r.DB(id).Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, 'bouncer-db')", string(id))
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Empty(t, failures, "pgbouncer log:\n%s", bouncer.Log())
	require.Zero(t, wrong.Load())
	require.Greater(t, ops.Load(), int64(tenants))
	for _, id := range ids {
		rows, err := r.DB(id).Query(ctx, "SELECT DISTINCT owner FROM items")
		require.NoError(t, err)
		owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{string(id)}, owners)
	}
}
