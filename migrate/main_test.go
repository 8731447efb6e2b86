package migrate_test

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestMain(m *testing.M) { isotest.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// files builds a migrations fs.FS from name -> SQL.
func files(kv ...string) fs.FS {
	out := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return out
}

// v1 is what provisioning gives every test tenant.
var v1 = []string{
	"0001_items.up.sql", `CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0);`,
	"0001_items.down.sql", `DROP TABLE counter; DROP TABLE items;`,
}

// with returns v1 plus more files.
func with(kv ...string) fs.FS { return files(append(append([]string{}, v1...), kv...)...) }

var v2 = []string{
	"0002_items_tag.up.sql", `ALTER TABLE items ADD COLUMN tag text NOT NULL DEFAULT ''; CREATE INDEX items_tag ON items (tag);`,
	"0002_items_tag.down.sql", `DROP INDEX items_tag; ALTER TABLE items DROP COLUMN tag;`,
}

// env is a deployment with n tenants at version 1.
type env struct {
	d       *isotest.Deployment
	super   *pgxpool.Pool
	admin   *pgxpool.Pool // 9 connections: a default Migrator on it runs 8 tenants at once
	p       *provision.Provisioner
	tenants []tenancy.ID
}

func newEnv(t *testing.T, n int, prefix string) *env {
	t.Helper()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: files(v1...)})
	ctx := ctxT(t)
	super, err := pgxpool.New(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	t.Cleanup(super.Close)
	cfg, err := pgxpool.ParseConfig(d.DB.AdminDSN)
	require.NoError(t, err)
	cfg.MaxConns = 9
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(admin.Close)
	p, err := provision.New(admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole, Migrations: files(v1...)})
	require.NoError(t, err)
	e := &env{d: d, super: super, admin: admin, p: p}
	e.tenants = e.create(t, n, prefix)
	return e
}

// create provisions n tenants named prefix-NNNN, 8 at a time.
func (e *env) create(t *testing.T, n int, prefix string) []tenancy.ID {
	t.Helper()
	ctx := ctxT(t)
	ids := make([]tenancy.ID, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = tenancy.ID(fmt.Sprintf("%s-%04d", prefix, i))
		wg.Add(1)
		sem <- struct{}{}
		go func(id tenancy.ID) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := e.p.Create(ctx, id, nil); err != nil {
				errs <- err
			}
		}(ids[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return ids
}

func (e *env) migrator(t *testing.T, fsys fs.FS, cfg *migrate.Config) *migrate.Migrator {
	t.Helper()
	if cfg == nil {
		cfg = &migrate.Config{}
	}
	cfg.Naming = tenancy.Naming{Prefix: e.d.DB.Prefix}
	m, err := migrate.New(e.admin, fsys, cfg)
	require.NoError(t, err)
	return m
}

// versions returns the catalog's schema_version of every tenant.
func (e *env) versions(t *testing.T) map[tenancy.ID]int64 {
	t.Helper()
	rows, err := e.super.Query(ctxT(t), "SELECT id, schema_version FROM bulkhead.tenants")
	require.NoError(t, err)
	out := map[tenancy.ID]int64{}
	var id string
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error { out[tenancy.ID(id)] = v; return nil })
	require.NoError(t, err)
	return out
}

func (e *env) schema(t *testing.T, id tenancy.ID) string {
	t.Helper()
	var s string
	require.NoError(t, e.super.QueryRow(ctxT(t), "SELECT schema_name FROM bulkhead.tenants WHERE id = $1", string(id)).Scan(&s))
	return s
}

// applied returns the versions recorded in tenant id's schema.
func (e *env) applied(t *testing.T, id tenancy.ID) []int64 {
	t.Helper()
	rows, err := e.super.Query(ctxT(t), "SELECT version FROM "+pgx.Identifier{e.schema(t, id), "bulkhead_migrations"}.Sanitize()+" ORDER BY version")
	require.NoError(t, err)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return vs
}

// hasColumn says whether tenant id's items table has column col.
func (e *env) hasColumn(t *testing.T, id tenancy.ID, col string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, e.super.QueryRow(ctxT(t), `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'items' AND column_name = $2)`, e.schema(t, id), col).Scan(&ok))
	return ok
}

// exec runs sql in tenant id's schema as the superuser.
func (e *env) exec(t *testing.T, id tenancy.ID, sql string) {
	t.Helper()
	ctx := ctxT(t)
	tx, err := e.super.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, "SET LOCAL search_path = "+pgx.Identifier{e.schema(t, id)}.Sanitize())
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}
