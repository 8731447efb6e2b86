package provision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

type fixedPlacement string

func (f fixedPlacement) Place(context.Context, tenancy.ID, map[string]int64) (string, error) {
	return string(f), nil
}

// TestClusterCreateFailureLeavesNothing: a failure at any step of Create for
// a tenant placed on another cluster leaves nothing on either cluster,
// including failures after the other cluster committed (compensated).
func TestClusterCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := deployment(t)
	srv, err := isotest.StartServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	db, err := srv.CreateDatabaseLike(ctx, d.DB)
	require.NoError(t, err)
	admin, err := pgxpool.New(ctx, db.AdminDSN)
	require.NoError(t, err)
	t.Cleanup(admin.Close)

	p, err := provision.New(d.Admin, &provision.Config{
		Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole, Migrations: bsql.LicensingMigrations(),
		Credentials: credentials(t), Clusters: map[string]*pgxpool.Pool{"c1": admin}, Placement: fixedPlacement("c1"),
	})
	require.NoError(t, err)
	_, err = p.Init(ctx)
	require.NoError(t, err)

	for _, step := range provision.CreateSteps {
		injected := errors.New("injected failure")
		provision.SetFailHook(p, func(s string) error {
			if s == step {
				return injected
			}
			return nil
		})
		_, err := p.Create(ctx, tenancy.ID("fail-"+step), nil)
		require.ErrorIs(t, err, injected)
		for name, pool := range map[string]*pgxpool.Pool{"default": d.Admin, "c1": admin} {
			var n int
			require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 || '\_t\_%' OR rolname LIKE $1 || '\_l\_%')
				+ (SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1 || '\_t\_%')`, d.DB.Prefix).Scan(&n))
			require.Zero(t, n, "step %s left roles or schemas on cluster %s", step, name)
		}
		_, err = p.Get(ctx, tenancy.ID("fail-"+step))
		require.ErrorIs(t, err, tenancy.ErrNotFound)
	}

	provision.SetFailHook(p, nil)
	tn, err := p.Create(ctx, "placed", nil)
	require.NoError(t, err)
	require.Equal(t, "c1", tn.Cluster)
	_, err = p.Delete(ctx, tn.ID, nil)
	require.NoError(t, err)
	_, err = p.Purge(ctx, tn.ID)
	require.NoError(t, err)
}
