package router_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// countingCatalog counts lookups, to prove bad IDs never reach SQL.
type countingCatalog struct {
	router.Catalog
	n atomic.Int64
}

func (c *countingCatalog) Tenant(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	c.n.Add(1)
	return c.Catalog.Tenant(ctx, id)
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	cat := &countingCatalog{Catalog: d.Provisioner}
	r := newRouter(t, d, router.Config{Catalog: cat, StatusTTL: time.Nanosecond})
	ctx := ctxT(t)

	t.Run("invalid IDs never reach SQL", func(t *testing.T) {
		for _, id := range []string{"", strings.Repeat("a", 64), "Acme", "acme brands", "a;drop table x", "a'b", `a"b`, "-acme", "ac\x00me", "acmé", "../etc"} {
			_, err := r.Acquire(ctx, tenancy.ID(id))
			require.ErrorIs(t, err, tenancy.ErrInvalidID, "id %q", id)
			var ie *tenancy.InvalidIDError
			require.ErrorAs(t, err, &ie)
			_, err = r.Begin(ctx, tenancy.ID(id))
			require.ErrorIs(t, err, tenancy.ErrInvalidID)
		}
		require.Zero(t, cat.n.Load())
		_, err := r.Acquire(ctx, tenancy.ID(strings.Repeat("a", 63)))
		require.ErrorIs(t, err, tenancy.ErrNotFound, "63 bytes is a valid ID")
	})

	t.Run("no tenant in context", func(t *testing.T) {
		_, err := r.AcquireFromContext(ctx)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
	})

	t.Run("unknown", func(t *testing.T) {
		_, err := r.Acquire(ctx, "no-such-tenant")
		require.ErrorIs(t, err, tenancy.ErrNotFound)
		var nf *tenancy.NotFoundError
		require.ErrorAs(t, err, &nf)
		require.Equal(t, tenancy.ID("no-such-tenant"), nf.ID)
	})

	t.Run("lifecycle", func(t *testing.T) {
		tn := d.NewTenant(t, nil)
		plant(t, r, tn.ID)

		_, err := d.Provisioner.Suspend(ctx, tn.ID)
		require.NoError(t, err)
		_, err = r.Acquire(ctx, tn.ID)
		require.ErrorIs(t, err, tenancy.ErrSuspended)
		require.ErrorIs(t, err, tenancy.ErrNotActive)
		_, err = r.Begin(ctx, tn.ID)
		require.ErrorIs(t, err, tenancy.ErrSuspended)

		_, err = d.Provisioner.Activate(ctx, tn.ID)
		require.NoError(t, err)
		_, err = d.Provisioner.Archive(ctx, tn.ID)
		require.NoError(t, err)
		_, err = r.Acquire(ctx, tn.ID)
		require.ErrorIs(t, err, tenancy.ErrArchived)

		_, err = d.Provisioner.Delete(ctx, tn.ID, nil)
		require.NoError(t, err)
		_, err = r.Acquire(ctx, tn.ID)
		require.ErrorIs(t, err, tenancy.ErrDeleted)

		_, err = d.Provisioner.Restore(ctx, tn.ID)
		require.NoError(t, err)
		c, err := r.Acquire(ctx, tn.ID)
		require.NoError(t, err)
		var owner string
		require.NoError(t, c.QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
		c.Release()
		require.Equal(t, string(tn.ID), owner, "restore brings the data back")

		_, err = d.Provisioner.Delete(ctx, tn.ID, nil)
		require.NoError(t, err)
		_, err = d.Provisioner.Purge(ctx, tn.ID)
		require.NoError(t, err)
		_, err = r.Acquire(ctx, tn.ID)
		require.ErrorIs(t, err, tenancy.ErrNotFound)
	})
}

// TestSuspensionEnforcedByDatabase: even a router with a stale cache cannot
// switch to a suspended tenant, because the gateway lost the membership.
func TestSuspensionEnforcedByDatabase(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	stale := newRouter(t, d, router.Config{StatusTTL: time.Hour})
	tn := d.NewTenant(t, nil)
	ctx := ctxT(t)
	c, err := stale.Acquire(ctx, tn.ID) // caches the tenant as active
	require.NoError(t, err)
	c.Release()

	_, err = d.Provisioner.Suspend(ctx, tn.ID)
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, d.DB.GatewayDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET ROLE "+pgx.Identifier{tn.Role}.Sanitize())
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)

	// A fresh connection of the stale router (its only pooled one is
	// already switched) must fail closed with the typed status error.
	fresh := newRouter(t, d, router.Config{StatusTTL: time.Hour, Catalog: &frozenCatalog{t: tn}})
	_, err = fresh.Acquire(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrNotActive, "the router re-reads the catalog when the database refuses the role")
}

// frozenCatalog answers the first lookup with t (as if cached before the
// suspension), then defers to the real catalog.
type frozenCatalog struct {
	t    *tenancy.Tenant
	used atomic.Bool
}

func (f *frozenCatalog) Tenant(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	if !f.used.Swap(true) {
		return f.t, nil
	}
	return nil, &tenancy.StatusError{ID: id, Status: tenancy.StatusSuspended}
}

func TestPerTenantLimit(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{MaxConnsPerTenant: 2, ConfigurePool: func(c *pgxpool.Config) { c.MaxConns = 6 }})
	a := d.NewTenant(t, nil)
	b := d.NewTenant(t, &provision.CreateOpts{Limits: tenancy.Limits{MaxConns: 1}})
	ctx := ctxT(t)

	c1, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	c2, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = r.Acquire(short, a.ID)
	require.ErrorIs(t, err, tenancy.ErrBusy)
	var be *tenancy.BusyError
	require.ErrorAs(t, err, &be)
	require.Equal(t, 2, be.Limit)

	// Another tenant is not starved, and its own limit from the catalog applies.
	cb, err := r.Acquire(ctx, b.ID)
	require.NoError(t, err)
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	_, err = r.Acquire(short2, b.ID)
	require.ErrorIs(t, err, tenancy.ErrBusy)
	cb.Release()

	c1.Release()
	c3, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err, "a released slot is usable again")
	c3.Release()
	c2.Release()
	require.Zero(t, r.Stat().BusyTenants)
}

func TestStatementTimeoutPerTenant(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	slow := d.NewTenant(t, &provision.CreateOpts{Limits: tenancy.Limits{StatementTimeout: 50 * time.Millisecond}})
	other := d.NewTenant(t, nil)
	ctx := ctxT(t)
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		err := r.InTx(ctx, slow.ID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT pg_sleep(1)")
			return err
		})
		requireSQLState(t, err, pgerrcode.QueryCanceled)
		require.NoError(t, r.InTx(ctx, other.ID, func(tx pgx.Tx) error {
			var v string
			require.NoError(t, tx.QueryRow(ctx, "SHOW statement_timeout").Scan(&v))
			require.Equal(t, "0", v, "%s: the next tenant does not inherit the timeout", mode)
			return nil
		}))
	}
}

// TestNonIdleConnectionDestroyed: a connection released inside a transaction
// is closed, never handed to the next tenant.
func TestNonIdleConnectionDestroyed(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)

	c, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	pid := c.Conn().PgConn().PID()
	_, err = c.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "INSERT INTO items (owner) VALUES ('uncommitted')")
	require.NoError(t, err)
	c.Release()

	c, err = r.Acquire(ctx, b.ID)
	require.NoError(t, err)
	defer c.Release()
	require.NotEqual(t, pid, c.Conn().PgConn().PID(), "the in-transaction connection must have been destroyed")
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n))
	require.Zero(t, n)
}

func TestWrongMode(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{Mode: router.TxLocal})
	tn := d.NewTenant(t, nil)
	_, err := d.Router.Acquire(ctxT(t), tn.ID)
	require.True(t, errors.Is(err, router.ErrWrongMode))
}
