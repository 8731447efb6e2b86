package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// dbtx is the interface sqlc generates for pgx/v5; router.DB must satisfy it.
type dbtx interface {
	Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error)
	Query(context.Context, string, ...interface{}) (pgx.Rows, error)
	QueryRow(context.Context, string, ...interface{}) pgx.Row
}

var _ dbtx = router.DB{}

var modes = []router.Mode{router.SessionRole, router.TxLocal}

// TestDBHygiene: single statements of A then B on one backend, with the
// switch pipelined into B's statement: nothing of A survives.
func TestDBHygiene(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	grantTemp(t, d, a)
	ctx := ctxT(t)
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for _, lo := range leftovers {
			t.Run(mode.String()+"/"+lo.name, func(t *testing.T) {
				var pidA, pidB uint32
				for _, s := range lo.plant {
					_, err := r.DB(a.ID).Exec(ctx, s)
					require.NoError(t, err, s)
				}
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidA))
				var leaked bool
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, lo.probe).Scan(&leaked))
				var user, path string
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT current_user, current_setting('search_path'), pg_backend_pid()").Scan(&user, &path, &pidB))
				require.Equal(t, pidA, pidB, "the test needs both tenants on one backend")
				require.Equal(t, b.Role, user)
				require.Equal(t, b.Schema+", pg_temp", path)
				require.False(t, leaked, "%s survived the switch from A to B", lo.name)
			})
		}
	}
}

// TestDBIsolated: each tenant's single statements see only its rows, reads
// and writes, with the pool switching tenants on every statement.
func TestDBIsolated(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for i := 0; i < 3; i++ {
			for _, tn := range []*tenancy.Tenant{a, b} {
				tag, err := r.DB(tn.ID).Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, $2)", string(tn.ID), mode.String())
				require.NoError(t, err)
				require.Equal(t, int64(1), tag.RowsAffected())
				rows, err := r.DB(tn.ID).Query(ctx, "SELECT DISTINCT owner FROM items")
				require.NoError(t, err)
				owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				require.Equal(t, []string{string(tn.ID)}, owners)
			}
		}
		require.Zero(t, r.Stat().Pool.AcquiredConns(), "%s: connections left checked out", mode)
	}
}

// TestDBVerificationFailureDestroys: when the verification pipelined before
// the caller's statement fails, the statement is not executed, no rows are
// returned, and the connection is destroyed.
func TestDBVerificationFailureDestroys(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
			pid := func() uint32 {
				var p uint32
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p))
				return p
			}
			before := pid()
			router.CorruptGatewayForTest(r)
			rows, err := r.DB(b.ID).Query(ctx, "SELECT owner FROM items")
			require.Error(t, err)
			require.Nil(t, rows, "no rows may reach the caller")

			before2 := pid()
			require.NotEqual(t, before, before2, "the connection must have been destroyed")
			router.CorruptGatewayForTest(r)
			_, err = r.DB(b.ID).Exec(ctx, "INSERT INTO items (owner) VALUES ('must-not-exist')")
			require.Error(t, err)
			require.NotEqual(t, before2, pid())

			var n int
			require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT count(*) FROM items WHERE owner = 'must-not-exist'").Scan(&n))
			require.Zero(t, n, "the statement behind a failed verification must not run")
			require.Zero(t, r.Stat().Pool.AcquiredConns())
		})
	}
}

// TestDBStatementFailureKeepsIsolation: a failing statement, or one that
// ends the pipeline's transaction, undoes the pipelined switch; the session
// must then be switched again, never reused as if it served the tenant.
func TestDBStatementFailureKeepsIsolation(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	for _, mode := range modes {
		for _, bad := range []string{"SELECT 1/0", "ROLLBACK", "COMMIT", "INSERT INTO secrets VALUES (1, 'dup')", "RESET ROLE", "SELECT * FROM no_such_table"} {
			t.Run(mode.String()+"/"+bad, func(t *testing.T) {
				r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
				var pidA, pidB uint32
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidA))
				_, _ = r.DB(b.ID).Exec(ctx, bad)
				var user, secret string
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT current_user, value, pg_backend_pid() FROM secrets").Scan(&user, &secret, &pidB))
				require.Equal(t, pidA, pidB, "the connection is reused after a statement error")
				require.Equal(t, b.Role, user)
				require.Equal(t, string(b.ID), secret)
				if mode == router.SessionRole {
					c, err := r.Acquire(ctx, b.ID)
					require.NoError(t, err)
					require.NoError(t, c.QueryRow(ctx, "SELECT current_user, value FROM secrets").Scan(&user, &secret))
					c.Release()
					require.Equal(t, b.Role, user)
					require.Equal(t, string(b.ID), secret)
				}
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT value FROM secrets").Scan(&secret))
				require.Equal(t, string(a.ID), secret)
			})
		}
	}
}

// TestDBSuspendedFailsClosed: a stale router whose pipelined switch is
// refused by the database returns the typed status error and no rows.
func TestDBSuspendedFailsClosed(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	tn := d.NewTenant(t, nil)
	plant(t, d.Router, tn.ID)
	ctx := ctxT(t)
	_, err := d.Provisioner.Suspend(ctx, tn.ID)
	require.NoError(t, err)
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, StatusTTL: time.Hour, Catalog: &frozenCatalog{t: tn}})
		var owner string
		err := r.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner)
		require.ErrorIs(t, err, tenancy.ErrNotActive, "%s", mode)
		require.Empty(t, owner)
	}
}

// TestDBTxLocalCommitAndRollback: in TxLocal each statement is its own
// transaction: a successful one is committed, a failed one leaves nothing.
func TestDBTxLocalCommitAndRollback(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	tn := d.NewTenant(t, nil)
	ctx := ctxT(t)
	r := newRouter(t, d, router.Config{Mode: router.TxLocal, ConfigurePool: onePool})
	_, err := r.DB(tn.ID).Exec(ctx, "INSERT INTO secrets VALUES (7, 'kept')")
	require.NoError(t, err)
	_, err = r.DB(tn.ID).Exec(ctx, "WITH x AS (INSERT INTO items (owner) VALUES ('gone')) INSERT INTO secrets VALUES (7, 'dup')")
	requireSQLState(t, err, pgerrcode.UniqueViolation)
	var n int
	require.NoError(t, r.DB(tn.ID).QueryRow(ctx, "SELECT count(*) FROM items WHERE owner = 'gone'").Scan(&n))
	require.Zero(t, n)
	// Options a batch cannot carry fall back to a separate BEGIN.
	var v string
	require.NoError(t, r.DB(tn.ID).QueryRow(ctx, "SELECT value FROM secrets WHERE id = $1", pgx.QueryExecModeSimpleProtocol, 7).Scan(&v))
	require.Equal(t, "kept", v)
	require.Zero(t, r.Stat().Pool.AcquiredConns())
}

// TestDBFailedResetFailsClosed: when the reset segment fails, the segment
// with the switch and the caller's statement refuses to run (the previous
// tenant's role is still in force), no rows are returned and the connection
// is destroyed. Not parallel: it swaps the reset statement package-wide.
func TestDBFailedResetFailsClosed(t *testing.T) {
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	ctx := ctxT(t)
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	pidOfA := func() uint32 {
		var p uint32
		require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p))
		return p
	}
	pidA := pidOfA()
	restore := router.FailResetForTest()
	_, err := r.DB(b.ID).Exec(ctx, "INSERT INTO items (owner) VALUES ('must-not-exist')")
	restore()
	require.Error(t, err)
	pidA2 := pidOfA()
	require.NotEqual(t, pidA, pidA2, "the connection must have been destroyed")
	restore = router.FailResetForTest()
	rows, err := r.DB(b.ID).Query(ctx, "SELECT owner FROM items")
	restore()
	require.Error(t, err)
	require.Nil(t, rows)
	var n int
	var pidB uint32
	require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT count(*), pg_backend_pid() FROM items").Scan(&n, &pidB))
	require.Zero(t, n, "the statement behind a failed reset must not run")
	require.NotEqual(t, pidA2, pidB, "the connection must have been destroyed")
	require.NotEqual(t, pidA, pidB, "the connection must have been destroyed")
}

// TestDBWithoutSetConfig: on a database hardened by a superuser (set_config
// revoked from PUBLIC and not granted to the gateway) the single-statement
// switch falls back to SET statements, transparently and as safely.
func TestDBWithoutSetConfig(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	super, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer super.Close(context.Background())
	_, err = super.Exec(ctx, "REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC")
	require.NoError(t, err)
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for i := 0; i < 3; i++ {
			for _, tn := range []*tenancy.Tenant{a, b} {
				_, err := r.DB(tn.ID).Exec(ctx, "INSERT INTO items (owner) VALUES ($1)", string(tn.ID))
				require.NoError(t, err, "%s", mode)
				var owners []string
				rows, err := r.DB(tn.ID).Query(ctx, "SELECT DISTINCT owner FROM items")
				require.NoError(t, err)
				owners, err = pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				require.Equal(t, []string{string(tn.ID)}, owners)
				var user, path string
				require.NoError(t, r.DB(tn.ID).QueryRow(ctx, "SELECT current_user, current_setting('search_path')").Scan(&user, &path))
				require.Equal(t, tn.Role, user)
				require.Equal(t, tn.Schema+", pg_temp", path)
			}
		}
	}
}
