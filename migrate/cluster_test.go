package migrate_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// byPrefix places tenants whose ID starts with "r-" on cluster "c1", the
// others on the primary.
type byPrefix struct{}

func (byPrefix) Place(_ context.Context, id tenancy.ID, _ map[string]int64) (string, error) {
	if strings.HasPrefix(string(id), "r-") {
		return "c1", nil
	}
	return "default", nil
}

// clusterEnv is a deployment on two PostgreSQL servers: the primary (the
// catalog) and "c1", with tenants p-* on the primary and r-* on c1, at
// version 1.
type clusterEnv struct {
	*env
	rsuper *pgxpool.Pool // superuser on c1
	radmin *pgxpool.Pool // admin on c1
}

func newClusterEnv(t *testing.T, ids ...tenancy.ID) *clusterEnv {
	t.Helper()
	e := newEnv(t, 0, "unused")
	ctx := ctxT(t)
	srv, err := isotest.StartServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	db, err := srv.CreateDatabaseLike(ctx, e.d.DB)
	require.NoError(t, err)
	radmin, err := pgxpool.New(ctx, db.AdminDSN)
	require.NoError(t, err)
	t.Cleanup(radmin.Close)
	rsuper, err := pgxpool.New(ctx, db.SuperDSN)
	require.NoError(t, err)
	t.Cleanup(rsuper.Close)
	p, err := provision.New(e.admin, &provision.Config{Naming: tenancy.Naming{Prefix: e.d.DB.Prefix}, GatewayRole: e.d.DB.GatewayRole,
		Migrations: files(v1...), Clusters: map[string]*pgxpool.Pool{"c1": radmin}, Placement: byPrefix{}})
	require.NoError(t, err)
	_, err = p.Init(ctx)
	require.NoError(t, err)
	for _, id := range ids {
		tn, err := p.Create(ctx, id, nil)
		require.NoError(t, err)
		want := "default"
		if strings.HasPrefix(string(id), "r-") {
			want = "c1"
		}
		require.Equal(t, want, tn.Cluster)
	}
	e.p = p
	e.tenants = ids
	return &clusterEnv{env: e, rsuper: rsuper, radmin: radmin}
}

// migrator returns a Migrator that knows cluster c1.
func (c *clusterEnv) migrator(t *testing.T, fsys fs.FS, cfg *migrate.Config) *migrate.Migrator {
	t.Helper()
	if cfg == nil {
		cfg = &migrate.Config{}
	}
	cfg.Clusters = map[string]*pgxpool.Pool{"c1": c.radmin}
	return c.env.migrator(t, fsys, cfg)
}

// on returns the superuser pool of tenant id's cluster.
func (c *clusterEnv) on(id tenancy.ID) *pgxpool.Pool {
	if strings.HasPrefix(string(id), "r-") {
		return c.rsuper
	}
	return c.super
}

// appliedOn returns the versions in tenant id's version table, read on its
// own cluster.
func (c *clusterEnv) appliedOn(t *testing.T, id tenancy.ID) []int64 {
	t.Helper()
	rows, err := c.on(id).Query(ctxT(t), "SELECT version FROM "+pgx.Identifier{c.schema(t, id), "bulkhead_migrations"}.Sanitize()+" ORDER BY version")
	require.NoError(t, err)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return vs
}

// counter returns tenant id's counter, read on its own cluster.
func (c *clusterEnv) counter(t *testing.T, id tenancy.ID) int {
	t.Helper()
	var n int
	require.NoError(t, c.on(id).QueryRow(ctxT(t), "SELECT n FROM "+pgx.Identifier{c.schema(t, id), "counter"}.Sanitize()).Scan(&n))
	return n
}

// hasSchema says whether the schema of tenant id exists in the database of pool.
func (c *clusterEnv) hasSchema(t *testing.T, pool *pgxpool.Pool, id tenancy.ID) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(ctxT(t), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", c.schema(t, id)).Scan(&ok))
	return ok
}

// bump counts its applications in the counter, so a migration applied twice
// (or reverted twice) shows.
var bump = []string{
	"0002_bump.up.sql", `UPDATE counter SET n = n + 1; ALTER TABLE items ADD COLUMN tag text;`,
	"0002_bump.down.sql", `ALTER TABLE items DROP COLUMN tag; UPDATE counter SET n = n - 1;`,
}

// TestClusterFanOut: one fan-out migrates tenants on two clusters, each on
// its own, up and down; Plan, Status and Validate report them right.
func TestClusterFanOut(t *testing.T) {
	t.Parallel()
	ids := []tenancy.ID{"p-0", "p-1", "r-0", "r-1"}
	c := newClusterEnv(t, ids...)
	ctx := ctxT(t)
	for _, id := range ids {
		require.Equal(t, strings.HasPrefix(string(id), "p-"), c.hasSchema(t, c.super, id), id)
		require.Equal(t, strings.HasPrefix(string(id), "r-"), c.hasSchema(t, c.rsuper, id), id)
	}
	m := c.migrator(t, with(bump...), nil)

	plan, err := m.Plan(ctx, migrate.Up, nil)
	require.NoError(t, err)
	require.Len(t, plan.Tenants, 4)
	for _, tp := range plan.Tenants {
		require.Equal(t, []int64{2}, tp.Versions)
		require.Equal(t, map[bool]string{true: "c1", false: "default"}[strings.HasPrefix(string(tp.Tenant), "r-")], tp.Cluster)
	}
	st, err := m.Status(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, st.Behind)
	require.Equal(t, "c1", st.Tenants[2].Cluster)

	res, err := m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, res.Succeeded)
	require.Zero(t, migrate.Replans(m))
	for _, r := range res.Tenants {
		require.Equal(t, migrate.Succeeded, r.State, r.Tenant)
		require.Equal(t, int64(2), r.To)
		require.False(t, r.CatalogRepaired)
	}
	for _, id := range ids {
		require.Equal(t, int64(2), c.versions(t)[id], id)
		require.Equal(t, []int64{1, 2}, c.appliedOn(t, id), id)
		require.Equal(t, 1, c.counter(t, id), id)
	}
	led, err := m.Ledger(ctx, res.RunID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", led.State)
	for _, r := range led.Results {
		require.Equal(t, "succeeded", r.State, r.Tenant)
		require.Equal(t, []int64{2}, r.Versions, r.Tenant)
	}

	st, err = m.Status(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, st.UpToDate)
	val, err := m.Validate(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, val.Checked)
	require.Empty(t, val.Problems)
	plan, err = m.Plan(ctx, migrate.Up, nil)
	require.NoError(t, err)
	require.Empty(t, plan.Tenants)
	require.Equal(t, 4, plan.AtTarget)

	down, err := m.Down(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, down.Succeeded)
	for _, id := range ids {
		require.Equal(t, int64(1), c.versions(t)[id], id)
		require.Equal(t, []int64{1}, c.appliedOn(t, id), id)
		require.Equal(t, 0, c.counter(t, id), id)
	}
	val, err = m.Validate(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, val.Problems)

	// A migration outside a transaction runs on the tenant's cluster too.
	noTx := c.migrator(t, with(append(append([]string{}, bump...),
		"0003_note_index.up.sql", "-- bulkhead:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_note ON items (note);")...), nil)
	res, err = noTx.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, res.Succeeded)
	for _, id := range ids {
		require.Equal(t, int64(3), c.versions(t)[id], id)
		require.Equal(t, []int64{1, 2, 3}, c.appliedOn(t, id), id)
		var ok bool
		require.NoError(t, c.on(id).QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", c.schema(t, id)+".items_note").Scan(&ok))
		require.True(t, ok, id)
	}
}

// TestClusterCrashBetweenCommits: a crash after a step committed on the
// tenant's cluster and before the catalog recorded it is repaired by the
// next run, up and down, without applying (or reverting) anything twice.
// Also: an unknown cluster fails only its tenants, with a typed error, and
// the advisory lock is taken on the tenant's own cluster.
func TestClusterCrashBetweenCommits(t *testing.T) {
	t.Parallel()
	c := newClusterEnv(t, "p-0", "r-0")
	ctx := ctxT(t)

	// A Migrator that does not know c1.
	unaware := c.env.migrator(t, with(bump...), nil)
	res, err := unaware.Up(ctx, nil)
	var pe *migrate.PartialError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, err, migrate.ErrUnknownCluster)
	var uc *migrate.UnknownClusterError
	require.ErrorAs(t, pe.Failed["r-0"], &uc)
	require.Equal(t, "c1", uc.Cluster)
	require.Equal(t, []tenancy.ID{"p-0"}, pe.Succeeded)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, int64(1), c.versions(t)["r-0"])

	// The lock is taken on c1: holding the schema's key there times r-0 out.
	key := migrate.LockKey(c.schema(t, "r-0"))
	conn, err := c.rsuper.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key)
	require.NoError(t, err)
	locked := c.migrator(t, with(bump...), &migrate.Config{LockTimeout: 200 * time.Millisecond})
	_, err = locked.Up(ctx, nil)
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Failed, tenancy.ID("r-0"))
	require.Equal(t, "55P03", pe.Result.Tenants[1].SQLState)
	require.Equal(t, int64(1), c.versions(t)["r-0"])
	require.Equal(t, []int64{1}, c.appliedOn(t, "r-0"))
	_, err = conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key)
	require.NoError(t, err)
	conn.Release()

	// Crash between the commit on c1 and the catalog's.
	crash := errors.New("injected crash")
	m := c.migrator(t, with(bump...), nil)
	migrate.SetAfterRemoteCommit(m, func(id tenancy.ID, v int64) error {
		if id == "r-0" {
			return crash
		}
		return nil
	})
	_, err = m.Up(ctx, nil)
	require.ErrorIs(t, err, crash)
	require.Equal(t, int64(1), c.versions(t)["r-0"], "the catalog missed the step")
	require.Equal(t, []int64{1, 2}, c.appliedOn(t, "r-0"), "the step committed on c1")
	val, err := m.Validate(ctx, nil)
	require.NoError(t, err)
	require.Len(t, val.Problems, 1)
	require.Equal(t, "catalog", val.Problems[0].Kind)

	// The next run catches the catalog up without applying again.
	migrate.SetAfterRemoteCommit(m, nil)
	res, err = m.Up(ctx, nil)
	require.NoError(t, err)
	r := res.Tenants[1]
	require.Equal(t, tenancy.ID("r-0"), r.Tenant)
	require.Equal(t, migrate.Skipped, r.State)
	require.True(t, r.CatalogRepaired)
	require.Empty(t, r.Steps)
	require.Equal(t, int64(2), r.To)
	require.Equal(t, int64(2), c.versions(t)["r-0"])
	require.Equal(t, 1, c.counter(t, "r-0"), "applied once")
	led, err := m.Ledger(ctx, res.RunID)
	require.NoError(t, err)
	require.Len(t, led.Results, 1)
	require.Equal(t, "succeeded", led.Results[0].State)
	require.Equal(t, int64(2), led.Results[0].To)
	val, err = m.Validate(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, val.Problems)

	// The same going down.
	migrate.SetAfterRemoteCommit(m, func(tenancy.ID, int64) error { return crash })
	_, err = m.Down(ctx, &migrate.RunOpts{Tenants: migrate.Selection{IDs: []tenancy.ID{"r-0"}}})
	require.ErrorIs(t, err, crash)
	require.Equal(t, int64(2), c.versions(t)["r-0"])
	require.Equal(t, []int64{1}, c.appliedOn(t, "r-0"))
	migrate.SetAfterRemoteCommit(m, nil)
	res, err = m.Down(ctx, &migrate.RunOpts{Tenants: migrate.Selection{IDs: []tenancy.ID{"r-0"}}})
	require.NoError(t, err)
	require.True(t, res.Tenants[0].CatalogRepaired)
	require.Empty(t, res.Tenants[0].Steps)
	require.Equal(t, int64(1), c.versions(t)["r-0"])
	require.Equal(t, []int64{1}, c.appliedOn(t, "r-0"), "reverted once, version 1 kept")
	require.Equal(t, 0, c.counter(t, "r-0"))
}
