package isotest_test

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// routerConfig is the router configuration the suite runs against: a
// statement timeout (DOS-001 requires one) and a short acquire timeout, so
// the checkout-cap attack does not wait long.
func routerConfig(mode router.Mode) router.Config {
	return router.Config{Mode: mode, StatementTimeout: time.Second, AcquireTimeout: time.Second}
}

// appMigrations stand for an application's tenant schema: the harness adds
// its canary objects beside them.
var appMigrations = fstest.MapFS{
	"0001_orders.up.sql":   {Data: []byte("CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL DEFAULT '');")},
	"0001_orders.down.sql": {Data: []byte("DROP TABLE orders;")},
}

// TestSuiteAgainstRouter runs the whole catalogue against bulkhead's router
// in every implemented mode: every attack must be blocked or stay within
// its mode's documented residual.
func TestSuiteAgainstRouter(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal, router.TenantLogin} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			opts := &isotest.DeploymentOpts{Router: routerConfig(mode), Migrations: appMigrations}
			if mode == router.TenantLogin {
				secret := make([]byte, 32)
				_, _ = rand.Read(secret)
				creds, err := tenancy.NewDerivedCredentials(secret)
				require.NoError(t, err)
				opts.Credentials = creds
			}
			d := isotest.NewDeployment(t, opts)
			target := &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}
			if mode == router.TxLocal {
				// An application's own tenants, with its own tables, instead of
				// throwaway ones.
				target.Attacker, target.Victim = d.NewTenant(t, nil).ID, d.NewTenant(t, nil).ID
			}
			rep := isotest.Run(t, target, nil)
			require.NotNil(t, rep)
			if os.Getenv("ISOTEST_PRINT") != "" {
				_ = rep.WriteText(os.Stdout)
			}
		})
	}
}

// leftovers counts what a run may leave behind: throwaway tenants in the
// catalog, canary tables in any schema, large objects.
func leftovers(t *testing.T, d *isotest.Deployment) (tenants, tables, los int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, d.Admin.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM bulkhead.tenants WHERE id LIKE 'isotest-%'),
		(SELECT count(*) FROM pg_class WHERE relname IN ('bh_isotest_canary', 'bh_isotest_seq')),
		(SELECT count(*) FROM pg_largeobject_metadata)`).Scan(&tenants, &tables, &los))
	return
}

// TestAuditCleansUp: a completed audit and an interrupted one both leave no
// tenant, canary object or large object behind.
func TestAuditCleansUp(t *testing.T) {
	t.Parallel()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Router: routerConfig(router.SessionRole)})
	target := &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}

	rep, err := isotest.Audit(context.Background(), target, &isotest.RunOpts{Classes: []isotest.Class{isotest.ClassLargeObject}})
	require.NoError(t, err)
	require.False(t, rep.Failed())
	n1, n2, n3 := leftovers(t, d)
	require.Equal(t, [3]int{0, 0, 0}, [3]int{n1, n2, n3}, "tenants, canary objects, large objects left after a completed audit")

	// Interrupted: cancel while the attacks run.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if a, _, _ := leftovers(t, d); a > 0 {
				time.Sleep(300 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err = isotest.Audit(ctx, target, nil)
	require.ErrorIs(t, err, context.Canceled)
	n1, n2, n3 = leftovers(t, d)
	require.Equal(t, [3]int{0, 0, 0}, [3]int{n1, n2, n3}, "tenants, canary objects, large objects left after an interrupted audit")
}

// TestSuiteFullyHardened: with the hardening that needs a superuser applied
// as well, the attacks that depend on it turn from residual to blocked.
func TestSuiteFullyHardened(t *testing.T) {
	t.Parallel()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Router: routerConfig(router.SessionRole)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, s := range []string{
		"REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC",
		"REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC",
		"REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC",
		"REVOKE SELECT ON pg_catalog.pg_stat_user_tables, pg_catalog.pg_stat_all_tables, pg_catalog.pg_statio_user_tables, pg_catalog.pg_statio_all_tables FROM PUBLIC",
		"REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer), pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_import(text), pg_catalog.lo_import(text, oid) FROM PUBLIC",
		"ALTER DATABASE " + pgx.Identifier{d.DB.Name}.Sanitize() + " SET temp_file_limit = '1GB'",
	} {
		_, err := conn.Exec(ctx, s)
		require.NoError(t, err, s)
	}
	// The attacks whose outcome depends on this hardening; the full catalogue
	// runs in TestSuiteAgainstRouter.
	// The attacks whose outcome depends on this hardening; the full catalogue
	// runs in TestSuiteAgainstRouter.
	rep := isotest.Run(t, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}, &isotest.RunOpts{
		IDs: []string{"ROLE-001", "ROLE-005", "PATH-001", "PATH-002", "PATH-003", "PATH-005", "META-006", "META-007", "META-008",
			"LO-001", "LO-002", "LO-003", "LO-004", "LO-005", "FILE-005", "DOS-006"},
	})
	got := map[string]isotest.Verdict{}
	for _, r := range rep.Results {
		got[r.ID] = r.Verdict
	}
	for _, id := range []string{"ROLE-005", "META-006", "META-008", "LO-004", "DOS-006"} {
		require.Equal(t, isotest.Pass, got[id], "%s must be blocked once the superuser hardening is in place", id)
	}
	for _, h := range rep.Hardening {
		require.True(t, h.InPlace, "%s: %s", h.Name, h.Detail)
	}
}
