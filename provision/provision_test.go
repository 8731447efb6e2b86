package provision_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestMain(m *testing.M) { isotest.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func deployment(t *testing.T) *isotest.Deployment {
	return isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations()})
}

func super(t *testing.T, d *isotest.Deployment) *pgx.Conn {
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// leftovers counts what exists for a tenant key, seen by the superuser.
func leftovers(t *testing.T, conn *pgx.Conn, prefix string, id tenancy.ID) (roles, schemas, rows int) {
	t.Helper()
	ctx := ctxT(t)
	require.NoError(t, conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 || '\_t\_%'),
		(SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1 || '\_t\_%'),
		(SELECT count(*) FROM bulkhead.tenants WHERE id = $2)`, prefix, string(id)).Scan(&roles, &schemas, &rows))
	return
}

func TestInitIdempotentAndReported(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	rep := d.InitReport
	names := map[string]provision.CheckState{}
	for _, c := range rep.Checks {
		names[c.Name] = c.State
	}
	require.Equal(t, provision.Applied, names["control schema"], rep.String())
	require.Equal(t, provision.Applied, names["schema public closed to PUBLIC"], rep.String())
	require.Equal(t, provision.Applied, names["no TEMP for PUBLIC"], rep.String())
	require.Equal(t, provision.InPlace, names["database owned by a NOLOGIN role"], rep.String())
	// The admin is not a superuser: revoking set_config is reported, not skipped.
	require.Equal(t, provision.NotApplied, names["set_config revoked from PUBLIC"], rep.String())
	require.NotEmpty(t, rep.NotApplied())

	again, err := d.Provisioner.Init(ctx)
	require.NoError(t, err)
	for _, c := range again.Checks {
		require.NotEqual(t, provision.Applied, c.State, "second Init changed %q: %s", c.Name, c.Detail)
	}
}

func TestInitAsSuperuserAppliesEverything(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	pool, err := pgxpool.New(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer pool.Close()
	p, err := provision.New(pool, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole})
	require.NoError(t, err)
	rep, err := p.Init(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.NotApplied(), rep.String())
}

func TestInitRefusesSuperuserGateway(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	conn := super(t, d)
	_, err := conn.Exec(ctx, "CREATE ROLE "+d.DB.Prefix+"_sugw SUPERUSER")
	require.NoError(t, err)
	p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.Prefix + "_sugw"})
	require.NoError(t, err)
	_, err = p.Init(ctx)
	require.ErrorContains(t, err, "superuser")
}

func TestCreateBuildsTheDatabaseModel(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	tn, err := d.Provisioner.Create(ctx, "acme-brands", &provision.CreateOpts{Name: "ACME Brands"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.RemoveTenant(context.Background(), tn.ID) })
	require.Equal(t, tenancy.StatusActive, tn.Status)
	require.Equal(t, int64(2), tn.SchemaVersion)
	require.NoError(t, tn.Key.Validate())
	require.LessOrEqual(t, len(tn.Schema), 63)
	require.NotContains(t, tn.Schema, "acme", "names derive from the key, never the ID")

	conn := super(t, d)
	var login, inherit bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT rolcanlogin, rolinherit FROM pg_roles WHERE rolname = $1", tn.Role).Scan(&login, &inherit))
	require.False(t, login)
	require.False(t, inherit)

	// Every object in the schema belongs to the owner role, none to the tenant.
	var foreignOwned int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND pg_get_userbyid(c.relowner) <> $2`, tn.Schema, d.DB.Prefix+"_owner").Scan(&foreignOwned))
	require.Zero(t, foreignOwned)
	var schemaOwner string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", tn.Schema).Scan(&schemaOwner))
	require.Equal(t, d.DB.Prefix+"_owner", schemaOwner)

	// DML on tables, nothing more; no CREATE on the schema; no TEMP.
	var canCreate, canTemp, canSelect, canTruncate, canWriteVersions bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT has_schema_privilege($1, $2, 'CREATE'),
		has_database_privilege($1, current_database(), 'TEMP'),
		has_table_privilege($1, $3, 'SELECT'), has_table_privilege($1, $3, 'TRUNCATE'),
		has_table_privilege($1, $4, 'INSERT')`,
		tn.Role, tn.Schema, tn.Schema+".agreements", tn.Schema+".bulkhead_migrations").Scan(&canCreate, &canTemp, &canSelect, &canTruncate, &canWriteVersions))
	require.False(t, canCreate)
	require.False(t, canTemp)
	require.True(t, canSelect)
	require.False(t, canTruncate)
	require.False(t, canWriteVersions, "the tenant must not be able to forge its migration version")

	var member bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", d.DB.GatewayRole, tn.Role).Scan(&member))
	require.True(t, member)

	_, err = d.Provisioner.Create(ctx, "acme-brands", nil)
	require.ErrorIs(t, err, tenancy.ErrExists)

	events, err := d.Provisioner.ListAudit(ctx, provision.AuditQuery{Tenant: tn.ID})
	require.NoError(t, err)
	require.NotEmpty(t, events)
	require.Equal(t, "tenant.create", events[0].Action)
}

// TestCreateFailureLeavesNothing injects a failure at every step of Create.
func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	conn := super(t, d)
	ctx := ctxT(t)
	for _, step := range provision.CreateSteps {
		t.Run(step, func(t *testing.T) {
			p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole, Migrations: bsql.LicensingMigrations()})
			require.NoError(t, err)
			injected := errors.New("injected failure")
			provision.SetFailHook(p, func(s string) error {
				if s == step {
					return injected
				}
				return nil
			})
			id := tenancy.ID("fail-" + step)
			_, err = p.Create(ctx, id, nil)
			require.ErrorIs(t, err, injected)
			roles, schemas, rows := leftovers(t, conn, d.DB.Prefix, id)
			require.Zero(t, roles, "role left behind")
			require.Zero(t, schemas, "schema left behind")
			require.Zero(t, rows, "catalog row left behind")
		})
	}
}

// TestBrokenMigrationLeavesNothing: a real SQL error in a tenant migration.
func TestBrokenMigrationLeavesNothing(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	broken := mapFS{
		"0001_ok.up.sql":     "CREATE TABLE ok (id int);",
		"0002_broken.up.sql": "CREATE TABLE broken (id int REFERENCES nowhere(id));",
	}
	p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole, Migrations: broken.FS()})
	require.NoError(t, err)
	_, err = p.Create(ctx, "broken", nil)
	require.ErrorContains(t, err, "0002_broken")
	require.ErrorContains(t, err, "42P01")
	roles, schemas, rows := leftovers(t, super(t, d), d.DB.Prefix, "broken")
	require.Zero(t, roles+schemas+rows)
}

func TestLifecycleTransitions(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	tn := d.NewTenant(t, nil)
	p := d.Provisioner

	_, err := p.Activate(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTransition, "activating an active tenant")
	_, err = p.Restore(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTransition)
	_, err = p.Purge(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTransition, "purge needs a soft delete first")
	for _, op := range []func(context.Context, tenancy.ID) (*tenancy.Tenant, error){p.Suspend, p.Activate, p.Archive, p.Activate} {
		_, err := op(ctx, tn.ID)
		require.NoError(t, err)
	}
	del, err := p.Delete(ctx, tn.ID, &provision.DeleteOpts{Retention: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, tenancy.StatusDeleted, del.Status)
	require.NotNil(t, del.RetainUntil)
	time.Sleep(100 * time.Millisecond)
	_, err = p.Restore(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrRetentionExpired)
	purged, err := p.PurgeExpired(ctx, 0)
	require.NoError(t, err)
	require.Len(t, purged, 1)
	_, err = p.Get(ctx, tn.ID)
	require.ErrorIs(t, err, tenancy.ErrNotFound)
	roles, schemas, rows := leftovers(t, super(t, d), d.DB.Prefix, tn.ID)
	require.Zero(t, roles+schemas+rows, "purge removes everything")

	for _, op := range []func(context.Context, tenancy.ID) (*tenancy.Tenant, error){p.Suspend, p.Activate, p.Archive, p.Restore, p.Get} {
		_, err := op(ctx, "nobody")
		require.ErrorIs(t, err, tenancy.ErrNotFound)
		_, err = op(ctx, "Bad ID")
		require.ErrorIs(t, err, tenancy.ErrInvalidID)
	}
}

// TestPurgeManyTables: purging a schema with many tables works in batches.
func TestPurgeManyTables(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	tn := d.NewTenant(t, nil)
	var b strings.Builder
	b.WriteString("SET ROLE " + d.DB.Prefix + "_owner; ")
	for i := 0; i < 350; i++ {
		fmt.Fprintf(&b, "CREATE TABLE %s.extra_%d (id serial PRIMARY KEY, v text); ", tn.Schema, i)
	}
	_, err := super(t, d).Exec(ctx, b.String())
	require.NoError(t, err)
	_, err = d.Provisioner.Delete(ctx, tn.ID, nil)
	require.NoError(t, err)
	res, err := d.Provisioner.Purge(ctx, tn.ID)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Tables, 350)
	require.GreaterOrEqual(t, res.Batches, 4)
	roles, schemas, rows := leftovers(t, super(t, d), d.DB.Prefix, tn.ID)
	require.Zero(t, roles+schemas+rows)
}

func TestListPages(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		d.NewTenant(t, nil)
	}
	var seen []tenancy.ID
	var after tenancy.ID
	for {
		page, err := d.Provisioner.List(ctx, &provision.ListOpts{Limit: 2, After: after})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Tenants), 2)
		for _, tn := range page.Tenants {
			seen = append(seen, tn.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Len(t, seen, 5)
	_, err := d.Provisioner.List(ctx, &provision.ListOpts{Limit: 5000})
	require.Error(t, err)
	page, err := d.Provisioner.List(ctx, &provision.ListOpts{Status: tenancy.StatusSuspended})
	require.NoError(t, err)
	require.Empty(t, page.Tenants)
	counts, err := d.Provisioner.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), counts[tenancy.StatusActive])
}

func TestAuditLogAppendOnly(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	require.NoError(t, d.Provisioner.RecordAudit(tenancy.WithActor(ctx, "alice"), "", "login.failed", "alice", map[string]any{"ip": "127.0.0.1"}))
	ev, err := d.Provisioner.ListAudit(ctx, provision.AuditQuery{Action: "login.failed"})
	require.NoError(t, err)
	require.Len(t, ev, 1)
	require.Equal(t, "alice", ev[0].Actor)
	_, err = d.Admin.Exec(ctx, "UPDATE bulkhead.audit_log SET actor = 'mallory'")
	require.ErrorContains(t, err, "append-only")
	_, err = d.Admin.Exec(ctx, "DELETE FROM bulkhead.audit_log")
	require.ErrorContains(t, err, "append-only")
}

// TestPurgeTenantWithLargeObjects: large objects live outside the tenant's
// schema, owned by its role; Purge must still remove the tenant entirely.
func TestPurgeTenantWithLargeObjects(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	ctx := ctxT(t)
	tn := d.NewTenant(t, nil)
	var oid uint32
	require.NoError(t, d.Router.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT lo_from_bytea(0, 'tenant secret')").Scan(&oid)
	}))
	conn := super(t, d)
	_, err := conn.Exec(ctx, "GRANT TEMPORARY ON DATABASE "+pgx.Identifier{d.DB.Name}.Sanitize()+" TO "+pgx.Identifier{tn.Role}.Sanitize())
	require.NoError(t, err)
	_, err = d.Provisioner.Delete(ctx, tn.ID, nil)
	require.NoError(t, err)
	_, err = d.Provisioner.Purge(ctx, tn.ID)
	require.NoError(t, err)
	var los int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", oid).Scan(&los))
	require.Zero(t, los, "the tenant's large object is gone")
	roles, schemas, rows := leftovers(t, conn, d.DB.Prefix, tn.ID)
	require.Zero(t, roles+schemas+rows)
}
