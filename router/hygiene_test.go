package router_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// onePool forces every checkout onto the same backend.
func onePool(c *pgxpool.Config) { c.MaxConns = 1 }

// leftovers is what tenant A leaves in its session; each check must come back
// clean when B gets the same connection.
var leftovers = []struct {
	name  string
	plant []string // run as A
	probe string   // run as B; must return 0 / empty / false
}{
	{"custom GUC", []string{"SET app.secret = 'tenant-a-secret'"},
		"SELECT coalesce(current_setting('app.secret', true), '') <> ''"},
	{"statement_timeout", []string{"SET statement_timeout = '1234ms'"},
		"SELECT current_setting('statement_timeout') = '1234ms'"},
	{"search_path", []string{"SET search_path = public"},
		"SELECT current_setting('search_path') NOT LIKE '%' || current_user || '%'"},
	{"role", []string{"RESET ROLE"}, "SELECT current_user = session_user"},
	{"temp table", []string{"CREATE TEMP TABLE a_temp AS SELECT 'tenant-a-secret' AS v"},
		"SELECT count(*) > 0 FROM pg_class WHERE relpersistence = 't' AND pg_table_is_visible(oid)"},
	// The router's own statements (bulkhead_*, prepared by DB for each
	// tenant) are meant to stay; none of A's may. (The probe splits its
	// patterns so that it does not match its own text.)
	{"prepared statement", []string{"PREPARE a_stmt AS SELECT 'tenant-a-secret'", "PREPARE stmtcache_planted AS SELECT 'planted'"},
		"SELECT count(*) > 0 FROM pg_prepared_statements WHERE name NOT LIKE 'bulkhead\\_%' OR statement LIKE '%tenant-a-' || 'secret%' OR statement LIKE '%plan' || 'ted%'"},
	{"cursor", []string{"DECLARE a_cur CURSOR WITH HOLD FOR SELECT 'tenant-a-secret'"},
		"SELECT count(*) > 0 FROM pg_cursors WHERE name = 'a_cur'"},
	{"LISTEN", []string{"LISTEN tenant_a_channel"},
		"SELECT count(*) > 0 FROM pg_listening_channels()"},
	{"advisory lock", []string{"SELECT pg_advisory_lock(4242)"},
		"SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"},
}

// TestHygieneSessionRole: a connection used by A then handed to B carries
// nothing of A.
func TestHygieneSessionRole(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	grantTemp(t, d, a)
	ctx := ctxT(t)

	for _, lo := range leftovers {
		t.Run(lo.name, func(t *testing.T) {
			pidA := withConn(t, r, a.ID, func(c *router.Conn) {
				for _, s := range lo.plant {
					_, err := c.Exec(ctx, s)
					require.NoError(t, err, s)
				}
			})
			var leaked bool
			pidB := withConn(t, r, b.ID, func(c *router.Conn) {
				require.NoError(t, c.QueryRow(ctx, lo.probe).Scan(&leaked))
				var user, path string
				require.NoError(t, c.QueryRow(ctx, "SELECT current_user, current_setting('search_path')").Scan(&user, &path))
				require.Equal(t, b.Role, user)
				require.Equal(t, b.Schema+", pg_temp", path)
			})
			require.Equal(t, pidA, pidB, "the test needs both tenants on one backend")
			require.False(t, leaked, "%s survived the switch from A to B", lo.name)
		})
	}
}

// TestHygieneTxLocal: the same, for transactions in TxLocal mode.
func TestHygieneTxLocal(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{Mode: router.TxLocal, ConfigurePool: onePool})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	grantTemp(t, d, a)
	ctx := ctxT(t)

	for _, lo := range leftovers {
		t.Run(lo.name, func(t *testing.T) {
			var pidA, pidB uint32
			require.NoError(t, r.InTx(ctx, a.ID, func(tx pgx.Tx) error {
				pidA = tx.Conn().PgConn().PID()
				for _, s := range lo.plant {
					if _, err := tx.Exec(ctx, s); err != nil {
						return err
					}
				}
				return nil
			}))
			var leaked bool
			require.NoError(t, r.InTx(ctx, b.ID, func(tx pgx.Tx) error {
				pidB = tx.Conn().PgConn().PID()
				var user string
				if err := tx.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
					return err
				}
				require.Equal(t, b.Role, user)
				return tx.QueryRow(ctx, lo.probe).Scan(&leaked)
			}))
			require.Equal(t, pidA, pidB)
			require.False(t, leaked, "%s survived the switch from A to B", lo.name)
		})
	}
}

// TestPlantedStatementNeverRuns: a statement A prepares under a name cannot
// be executed for B.
func TestPlantedStatementNeverRuns(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, r, b.ID)
	ctx := ctxT(t)
	withConn(t, r, a.ID, func(c *router.Conn) {
		_, err := c.Exec(ctx, "PREPARE q AS SELECT 'from-a'::text")
		require.NoError(t, err)
	})
	withConn(t, r, b.ID, func(c *router.Conn) {
		_, err := c.Exec(ctx, "EXECUTE q")
		require.Error(t, err, "A's prepared statement must be gone")
		var owner string
		require.NoError(t, c.QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
		require.Equal(t, string(b.ID), owner)
	})
}

// withConn runs fn on a connection for id and returns the backend PID.
func withConn(t *testing.T, r *router.Router, id tenancy.ID, fn func(*router.Conn)) uint32 {
	t.Helper()
	c, err := r.Acquire(ctxT(t), id)
	require.NoError(t, err)
	defer c.Release()
	fn(c)
	return c.Conn().PgConn().PID()
}

// grantTemp lets tenant tn create temporary tables (hardening normally
// forbids it), so that the reset of temporary objects is tested too.
func grantTemp(t *testing.T, d *isotest.Deployment, tn *tenancy.Tenant) {
	t.Helper()
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "GRANT TEMPORARY ON DATABASE "+pgx.Identifier{d.DB.Name}.Sanitize()+" TO "+pgx.Identifier{tn.Role}.Sanitize())
	require.NoError(t, err)
}
