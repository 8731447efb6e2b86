package main

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// remotePlacement puts tenants whose ID starts with "r-" on cluster "c1".
type remotePlacement struct{}

func (remotePlacement) Place(_ context.Context, id tenancy.ID, _ map[string]int64) (string, error) {
	if strings.HasPrefix(string(id), "r-") {
		return "c1", nil
	}
	return "default", nil
}

// TestMigrateCommandClusters: -cluster name=DSN lets one `migrate up` reach
// tenants on another cluster; without it they fail with a clear error.
func TestMigrateCommandClusters(t *testing.T) {
	t.Parallel()
	v1 := fstest.MapFS{"0001_items.up.sql": {Data: []byte("CREATE TABLE items (id int PRIMARY KEY, note text);")}}
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: v1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := isotest.StartServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	db, err := srv.CreateDatabaseLike(ctx, d.DB)
	require.NoError(t, err)
	radmin, err := pgxpool.New(ctx, db.AdminDSN)
	require.NoError(t, err)
	defer radmin.Close()
	p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole,
		Migrations: v1, Clusters: map[string]*pgxpool.Pool{"c1": radmin}, Placement: remotePlacement{}})
	require.NoError(t, err)
	_, err = p.Init(ctx)
	require.NoError(t, err)
	for _, id := range []tenancy.ID{"p-0", "r-0"} {
		_, err := p.Create(ctx, id, nil)
		require.NoError(t, err)
	}

	dir := t.TempDir()
	writeFiles(t, dir,
		"0001_items.up.sql", "CREATE TABLE items (id int PRIMARY KEY, note text);",
		"0002_tag.up.sql", "ALTER TABLE items ADD COLUMN tag text;",
	)
	base := []string{"-dsn", d.DB.AdminDSN, "-prefix", d.DB.Prefix, "-dir", dir}

	code, _, errOut := cli(t, append([]string{"migrate", "up", "-cluster", "c1"}, base...)...)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "want name=DSN")

	code, out, _ := cli(t, append([]string{"migrate", "up", "-tenants", "r-0"}, base...)...)
	require.Equal(t, 1, code)
	require.Contains(t, out, `cluster "c1", which is not configured`)

	code, out, errOut = cli(t, append([]string{"migrate", "up", "-cluster", "c1=" + db.AdminDSN}, base...)...)
	require.Equal(t, 0, code, out+errOut)
	require.Regexp(t, `2 succeeded`, out)
	var n int
	require.NoError(t, radmin.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE column_name = 'tag' AND table_name = 'items'`).Scan(&n))
	require.Equal(t, 1, n, "r-0 migrated on c1")
	code, out, _ = cli(t, append([]string{"migrate", "status", "-cluster", "c1=" + db.AdminDSN}, base...)...)
	require.Equal(t, 0, code)
	require.Contains(t, out, "2 up to date")
}
