package router_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// The tests in this file cover DB's statement cache and light reset
// (fastpath.go, stmtcache.go): statements kept across tenants must never
// carry anything of one tenant to another.

// cachedCount returns how many of the router's per-tenant statements the
// session holds, and how many of them have text sql. It runs through DB as
// tenant id, so it sees the session it lands on (tests use one connection).
func cachedCount(t *testing.T, r *router.Router, id tenancy.ID, sql string) (all, withText int) {
	t.Helper()
	require.NoError(t, r.DB(id).QueryRow(ctxT(t),
		"SELECT count(*) FILTER (WHERE name ~ '^bulkhead_s[0-9]+$'), count(*) FILTER (WHERE statement = $1) FROM pg_prepared_statements", sql).
		Scan(&all, &withText))
	return all, withText
}

// superExec runs sql as the superuser on d's database.
func superExec(t *testing.T, d *isotest.Deployment, sql string) {
	t.Helper()
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}

// TestDBLightResetHygiene: what a statement with a trusted command tag can
// leave in the session (GUC values, the role, session advisory locks) is
// gone when the session moves to another tenant by the light reset, and the
// light reset really was the one taken (A's cached statement survived).
func TestDBLightResetHygiene(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	// The deployment's Init revoked set_config from PUBLIC; A gets it back to
	// plant settings (and loses it before its role is dropped).
	setConfig := "EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) "
	superExec(t, d, "GRANT "+setConfig+"TO "+pgx.Identifier{a.Role}.Sanitize())
	t.Cleanup(func() { superExec(t, d, "REVOKE "+setConfig+"FROM "+pgx.Identifier{a.Role}.Sanitize()) })
	ctx := ctxT(t)
	const marker = "SELECT count(*) FROM items WHERE note = 'light-reset-marker'"
	plants := []struct {
		name, plant, probe string
	}{
		{"custom GUC", "SELECT set_config('app.secret', 'tenant-a-secret', false)",
			"SELECT coalesce(current_setting('app.secret', true), '') <> ''"},
		{"statement_timeout", "SELECT set_config('statement_timeout', '1234ms', false)",
			"SELECT current_setting('statement_timeout') = '1234ms'"},
		{"search_path", "SELECT set_config('search_path', 'public', false)",
			"SELECT current_setting('search_path') NOT LIKE '%' || current_user || '%'"},
		{"role", "SELECT set_config('role', 'none', false)", "SELECT current_user = session_user"},
		{"work_mem", "SELECT set_config('work_mem', '7777kB', false)", "SELECT current_setting('work_mem') = '7777kB'"},
		{"advisory lock", "SELECT pg_advisory_lock(4242)",
			"SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"},
	}
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for _, p := range plants {
			t.Run(mode.String()+"/"+p.name, func(t *testing.T) {
				var n int
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, marker).Scan(&n))
				_, err := r.DB(a.ID).Exec(ctx, p.plant)
				require.NoError(t, err, p.plant)
				var leaked bool
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, p.probe).Scan(&leaked))
				var user, path string
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT current_user, current_setting('search_path')").Scan(&user, &path))
				require.Equal(t, b.Role, user)
				require.Equal(t, b.Schema+", pg_temp", path)
				require.False(t, leaked, "%s survived the switch from A to B", p.name)
				_, kept := cachedCount(t, r, b.ID, marker)
				require.Equal(t, 1, kept, "A's cached statement must survive a light reset")

				// The same through Acquire (SessionRole) or InTx (TxLocal),
				// whose switch also takes the light reset after DB.
				_, err = r.DB(a.ID).Exec(ctx, p.plant)
				require.NoError(t, err, p.plant)
				probe := func(q pgx.Row) {
					require.NoError(t, q.Scan(&leaked, &user))
					require.Equal(t, b.Role, user)
					require.False(t, leaked, "%s survived the switch from A to B's checkout", p.name)
				}
				q := "SELECT (" + p.probe + "), current_user"
				if mode == router.TxLocal {
					require.NoError(t, r.InTx(ctx, b.ID, func(tx pgx.Tx) error { probe(tx.QueryRow(ctx, q)); return nil }))
				} else {
					withConn(t, r, b.ID, func(c *router.Conn) { probe(c.QueryRow(ctx, q)) })
				}
			})
		}
	}
}

// TestDBUntrustedStatementFullReset: a statement whose command tag the light
// reset cannot vouch for (CREATE TABLE AS says SELECT but has no rows,
// LISTEN, PREPARE, DECLARE, SET) makes the next tenant change a full reset:
// nothing of A survives, and neither do the cached statements.
func TestDBUntrustedStatementFullReset(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	grantTemp(t, d, a)
	ctx := ctxT(t)
	const marker = "SELECT count(*) FROM items WHERE note = 'full-reset-marker'"
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for _, lo := range leftovers {
			t.Run(mode.String()+"/"+lo.name, func(t *testing.T) {
				var n int
				require.NoError(t, r.DB(a.ID).QueryRow(ctx, marker).Scan(&n))
				for _, s := range lo.plant {
					_, err := r.DB(a.ID).Exec(ctx, s)
					require.NoError(t, err, s)
				}
				var leaked bool
				require.NoError(t, r.DB(b.ID).QueryRow(ctx, lo.probe).Scan(&leaked))
				require.False(t, leaked, "%s survived the switch from A to B", lo.name)
			})
		}
		t.Run(mode.String()+"/CREATE TEMP TABLE AS", func(t *testing.T) {
			var n int
			require.NoError(t, r.DB(a.ID).QueryRow(ctx, marker).Scan(&n))
			tag, err := r.DB(a.ID).Exec(ctx, "CREATE TEMP TABLE a_ctas AS SELECT 'tenant-a-secret' AS v")
			require.NoError(t, err)
			require.True(t, tag.Select(), "CREATE TABLE AS reports SELECT: %s", tag)
			var leaked bool
			require.NoError(t, r.DB(b.ID).QueryRow(ctx,
				"SELECT count(*) > 0 FROM pg_class WHERE relname = 'a_ctas'").Scan(&leaked))
			require.False(t, leaked, "A's temp table survived the switch to B")
			_, kept := cachedCount(t, r, b.ID, marker)
			require.Zero(t, kept, "a full reset drops the cached statements")
		})
	}
}

// TestDBStatementPerTenant: the same SQL text is prepared once per tenant
// and session, each copy planned under its tenant's search_path, and reused:
// alternating tenants on one connection re-prepares nothing and returns each
// tenant its own rows.
func TestDBStatementPerTenant(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	const q = "SELECT owner FROM items WHERE note = $1"
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		for range 5 {
			for _, tn := range []*tenancy.Tenant{a, b} {
				var owner string
				require.NoError(t, r.DB(tn.ID).QueryRow(ctx, q, "planted").Scan(&owner))
				require.Equal(t, string(tn.ID), owner, "%s", mode)
			}
		}
		_, copies := cachedCount(t, r, a.ID, q)
		require.Equal(t, 2, copies, "%s: one prepared copy per tenant", mode)
	}
}

// TestDBRetainedStatementStaysWithItsTenant: B executing, by name, the
// statement the router prepared for A (in the session B now holds) gets
// B's rows or an error, never A's: PostgreSQL checks privileges on every
// execution and re-plans under B's search_path.
func TestDBRetainedStatementStaysWithItsTenant(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	const qa = "SELECT value FROM secrets WHERE id = 1 /* a */"
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		var v string
		require.NoError(t, r.DB(a.ID).QueryRow(ctx, qa).Scan(&v))
		require.Equal(t, string(a.ID), v)
		var name string
		require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT name FROM pg_prepared_statements WHERE statement = $1", qa).Scan(&name))
		err := r.DB(b.ID).QueryRow(ctx, "EXECUTE "+pgx.Identifier{name}.Sanitize()).Scan(&v)
		if err == nil {
			require.Equal(t, string(b.ID), v, "%s: A's retained statement returned another tenant's row", mode)
		}
		// And the qualified form: A's plan under B's role is refused.
		const qq = "SELECT value FROM %s.secrets WHERE id = 1"
		require.NoError(t, r.DB(a.ID).QueryRow(ctx, fmt.Sprintf(qq, pgx.Identifier{a.Schema}.Sanitize())).Scan(&v))
		require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT name FROM pg_prepared_statements WHERE statement = $1",
			fmt.Sprintf(qq, pgx.Identifier{a.Schema}.Sanitize())).Scan(&name))
		err = r.DB(b.ID).QueryRow(ctx, "EXECUTE "+pgx.Identifier{name}.Sanitize()).Scan(&v)
		requireSQLState(t, err, "42501")
	}
}

// TestDBPlantedRouterStatement: a tenant that replaces the router's own
// switch statement on its connection (possible with Acquire, which runs any
// SQL) cannot fake the next tenant's switch: any checkout other than DB
// makes the next tenant change a full reset, which drops the planted
// statement before the switch is prepared again.
func TestDBPlantedRouterStatement(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	r := newRouter(t, d, router.Config{ConfigurePool: onePool})
	var v string
	require.NoError(t, r.DB(a.ID).QueryRow(ctx, "SELECT value FROM secrets").Scan(&v))
	withConn(t, r, a.ID, func(c *router.Conn) {
		for _, s := range []string{
			"DEALLOCATE bulkhead_switch",
			"PREPARE bulkhead_switch(text, text, text, text) AS SELECT $1, $2, $3, $4, ''",
			"DEALLOCATE bulkhead_reset_role",
			"PREPARE bulkhead_reset_role AS SELECT 1",
		} {
			_, err := c.Exec(ctx, s)
			if err != nil {
				require.Contains(t, err.Error(), "does not exist", s)
			}
		}
	})
	var user string
	require.NoError(t, r.DB(b.ID).QueryRow(ctx, "SELECT value, current_user FROM secrets").Scan(&v, &user))
	require.Equal(t, string(b.ID), v)
	require.Equal(t, b.Role, user)
}

// TestDBCachedPlanResultTypeChange: a migration that changes a cached
// statement's result type does not surface as an error: the router drops
// the statement and runs the query again, freshly prepared.
func TestDBCachedPlanResultTypeChange(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a := d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	ctx := ctxT(t)
	for _, mode := range modes {
		r := newRouter(t, d, router.Config{Mode: mode, ConfigurePool: onePool})
		rows, err := r.DB(a.ID).Query(ctx, "SELECT * FROM secrets")
		require.NoError(t, err)
		before := len(rows.FieldDescriptions())
		rows.Close()
		require.NoError(t, rows.Err())
		superExec(t, d, fmt.Sprintf("ALTER TABLE %s.secrets ADD COLUMN extra_%d int", pgx.Identifier{a.Schema}.Sanitize(), mode))
		rows, err = r.DB(a.ID).Query(ctx, "SELECT * FROM secrets")
		require.NoError(t, err)
		after := len(rows.FieldDescriptions())
		rows.Close()
		require.NoError(t, rows.Err(), "%s", mode)
		require.Equal(t, before+1, after, "%s", mode)
	}
}

// TestDBStatementCacheBounded: the cache never holds more statements per
// connection than StatementCacheSize; the least recently used is closed on
// the server.
func TestDBStatementCacheBounded(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a := d.NewTenant(t, nil)
	ctx := ctxT(t)
	r := newRouter(t, d, router.Config{ConfigurePool: onePool, StatementCacheSize: 3})
	for i := range 10 {
		var n int
		require.NoError(t, r.DB(a.ID).QueryRow(ctx, fmt.Sprintf("SELECT %d", i)).Scan(&n))
		require.Equal(t, i, n)
	}
	all, _ := cachedCount(t, r, a.ID, "")
	require.LessOrEqual(t, all, 3)
	// Disabled: nothing is kept.
	off := newRouter(t, d, router.Config{ConfigurePool: onePool, StatementCacheSize: -1})
	for i := range 3 {
		var n int
		require.NoError(t, off.DB(a.ID).QueryRow(ctx, fmt.Sprintf("SELECT %d", i)).Scan(&n))
	}
	all, _ = cachedCount(t, off, a.ID, "")
	require.Zero(t, all)
}
