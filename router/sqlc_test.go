package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/examples/licensing/licensingdb"
	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// TestSqlcRepositoriesOnScopedHandles: the generated licensing queries run
// unchanged on a router.Conn and a router.Tx, and see only their tenant.
func TestSqlcRepositoriesOnScopedHandles(t *testing.T) {
	t.Parallel()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations()})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)

	conn, err := d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	brand, err := licensingdb.New(conn).CreateBrand(ctx, licensingdb.CreateBrandParams{Name: "Acme Originals"})
	require.NoError(t, err)
	conn.Release()

	tx, err := d.Router.Begin(ctx, b.ID)
	require.NoError(t, err)
	q := licensingdb.New(tx)
	_, err = q.GetBrand(ctx, brand.ID)
	require.ErrorIs(t, err, pgx.ErrNoRows, "B cannot see A's brand by ID")
	list, err := q.ListBrands(ctx, licensingdb.ListBrandsParams{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, list)
	require.NoError(t, tx.Commit(ctx))

	conn, err = d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	defer conn.Release()
	got, err := licensingdb.New(conn).GetBrand(ctx, brand.ID)
	require.NoError(t, err)
	require.Equal(t, "Acme Originals", got.Name)
	require.True(t, got.ID.Valid)
}

type recTracer struct {
	mu       sync.Mutex
	acquires []router.AcquireData
	releases []router.ReleaseData
	queries  []router.QueryData
}

func (r *recTracer) TraceAcquire(_ context.Context, d router.AcquireData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acquires = append(r.acquires, d)
}
func (r *recTracer) TraceRelease(d router.ReleaseData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releases = append(r.releases, d)
}
func (r *recTracer) TraceQuery(_ context.Context, d router.QueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, d)
}

func TestTracerSeesTenants(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	rec := &recTracer{}
	r := newRouter(t, d, router.Config{Tracer: rec})
	a := d.NewTenant(t, nil)
	ctx := ctxT(t)
	c, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT count(*) FROM items")
	require.NoError(t, err)
	c.Release()
	_, err = r.Acquire(ctx, "nobody")
	require.ErrorIs(t, err, tenancy.ErrNotFound)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.acquires, 2)
	require.Equal(t, a.ID, rec.acquires[0].Tenant)
	require.True(t, rec.acquires[0].Switched)
	require.NoError(t, rec.acquires[0].Err)
	require.ErrorIs(t, rec.acquires[1].Err, tenancy.ErrNotFound)
	require.Len(t, rec.releases, 1)
	require.False(t, rec.releases[0].Destroyed)
	require.Len(t, rec.queries, 1)
	require.Equal(t, a.ID, rec.queries[0].Tenant)
	require.Equal(t, "SELECT count(*) FROM items", rec.queries[0].SQL)
}

// TestLostConnection: a backend killed under a pooled connection is never
// handed out switched to the wrong tenant; the failure is typed and the
// router recovers on the next checkout.
func TestLostConnection(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	pid := withConn(t, r, a.ID, func(*router.Conn) {})

	super, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer super.Close(ctx)
	_, err = super.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)

	// The switch to B travels on the dead connection: a typed, retryable error.
	_, err = r.Acquire(ctx, b.ID)
	require.Error(t, err)
	require.True(t, errors.Is(err, tenancy.ErrConnLost), "want ErrConnLost, got %v", err)

	// The dead connection was destroyed; the next checkout works and is B.
	withConn(t, r, b.ID, func(c *router.Conn) {
		var user string
		require.NoError(t, c.QueryRow(ctx, "SELECT current_user").Scan(&user))
		require.Equal(t, b.Role, user)
	})
}
