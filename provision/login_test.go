package provision_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func credentials(t *testing.T) *tenancy.DerivedCredentials {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	c, err := tenancy.NewDerivedCredentials(secret)
	require.NoError(t, err)
	return c
}

type loginRole struct {
	exists, canLogin, inherit, super, createRole, createDB bool
	password                                               string
	memberOf                                               []string
	config                                                 []string
	connect                                                bool
}

func readLogin(t *testing.T, conn *pgx.Conn, name string) loginRole {
	t.Helper()
	var l loginRole
	err := conn.QueryRow(ctxT(t), `SELECT true, a.rolcanlogin, a.rolinherit, a.rolsuper, a.rolcreaterole, a.rolcreatedb, coalesce(a.rolpassword, ''),
		coalesce((SELECT array_agg(r.rolname::text) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = a.oid), '{}'),
		coalesce((SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = a.oid AND s.setdatabase = 0), '{}'),
		has_database_privilege(a.rolname, current_database(), 'CONNECT')
		FROM pg_authid a WHERE a.rolname = $1`, name).
		Scan(&l.exists, &l.canLogin, &l.inherit, &l.super, &l.createRole, &l.createDB, &l.password, &l.memberOf, &l.config, &l.connect)
	if errors.Is(err, pgx.ErrNoRows) {
		return loginRole{}
	}
	require.NoError(t, err)
	return l
}

// TestLoginRoleLifecycle: with Credentials, Create makes a login role that
// is a member of its runtime role only, stores a SCRAM verifier (never the
// password), pins search_path; the lifecycle turns LOGIN off and on; Purge
// drops it.
func TestLoginRoleLifecycle(t *testing.T) {
	t.Parallel()
	creds := credentials(t)
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations(), Credentials: creds})
	conn := super(t, d)
	ctx := ctxT(t)
	tn := d.NewTenant(t, nil)
	name := tenancy.Naming{Prefix: d.DB.Prefix}.LoginRole(tn.Key)
	pw, err := creds.LoginPassword(ctx, tn.Key)
	require.NoError(t, err)

	l := readLogin(t, conn, name)
	require.True(t, l.exists)
	require.True(t, l.canLogin)
	require.True(t, l.inherit)
	require.False(t, l.super || l.createRole || l.createDB)
	require.Equal(t, []string{tn.Role}, l.memberOf)
	require.True(t, strings.HasPrefix(l.password, "SCRAM-SHA-256$16:"), l.password)
	require.NotContains(t, l.password, pw)
	require.Equal(t, []string{"search_path=" + tn.Schema + ", pg_temp"}, l.config)
	require.True(t, l.connect)

	for _, step := range []struct {
		op       func() error
		canLogin bool
	}{
		{func() error { _, err := d.Provisioner.Suspend(ctx, tn.ID); return err }, false},
		{func() error { _, err := d.Provisioner.Activate(ctx, tn.ID); return err }, true},
		{func() error { _, err := d.Provisioner.Archive(ctx, tn.ID); return err }, false},
		{func() error { _, err := d.Provisioner.Activate(ctx, tn.ID); return err }, true},
		{func() error { _, err := d.Provisioner.Delete(ctx, tn.ID, nil); return err }, false},
		{func() error { _, err := d.Provisioner.Restore(ctx, tn.ID); return err }, true},
		{func() error { _, err := d.Provisioner.Delete(ctx, tn.ID, nil); return err }, false},
	} {
		require.NoError(t, step.op())
		require.Equal(t, step.canLogin, readLogin(t, conn, name).canLogin)
	}
	_, err = d.Provisioner.Purge(ctx, tn.ID)
	require.NoError(t, err)
	require.False(t, readLogin(t, conn, name).exists)
}

// TestLoginRoleCreateFailureLeavesNothing: a failure at any step of Create
// leaves no login role either.
func TestLoginRoleCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	d := deployment(t)
	conn := super(t, d)
	ctx := ctxT(t)
	creds := credentials(t)
	for _, step := range provision.CreateSteps {
		p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole, Credentials: creds})
		require.NoError(t, err)
		injected := errors.New("injected failure")
		provision.SetFailHook(p, func(s string) error {
			if s == step {
				return injected
			}
			return nil
		})
		_, err = p.Create(ctx, tenancy.ID("fail-"+step), nil)
		require.ErrorIs(t, err, injected)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 || '\_l\_%'`, d.DB.Prefix).Scan(&n))
		require.Zero(t, n, "login role left behind after a failure at step %s", step)
	}
}

// TestEnsureLogin: tenants created before Credentials were configured get
// their login role from EnsureLogin; a membership added by hand is removed;
// a new secret (rotation) replaces the password.
func TestEnsureLogin(t *testing.T) {
	t.Parallel()
	d := deployment(t) // no Credentials: no login roles
	conn := super(t, d)
	ctx := ctxT(t)
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	naming := tenancy.Naming{Prefix: d.DB.Prefix}
	require.False(t, readLogin(t, conn, naming.LoginRole(a.Key)).exists)
	_, err := d.Provisioner.EnsureLogin(ctx, a.ID)
	require.Error(t, err, "EnsureLogin needs Credentials")

	newProvisioner := func(c tenancy.Credentials) *provision.Provisioner {
		p, err := provision.New(d.Admin, &provision.Config{Naming: naming, GatewayRole: d.DB.GatewayRole, Credentials: c})
		require.NoError(t, err)
		return p
	}
	c1 := credentials(t)
	p := newProvisioner(c1)
	_, err = d.Provisioner.Suspend(ctx, b.ID)
	require.NoError(t, err)
	for _, tn := range []*tenancy.Tenant{a, b} {
		_, err = p.EnsureLogin(ctx, tn.ID)
		require.NoError(t, err)
	}
	la := readLogin(t, conn, naming.LoginRole(a.Key))
	require.True(t, la.canLogin)
	require.Equal(t, []string{a.Role}, la.memberOf)
	require.False(t, readLogin(t, conn, naming.LoginRole(b.Key)).canLogin, "suspended tenant's login stays disabled")

	connectAs := func(c tenancy.Credentials) error {
		pw, err := c.LoginPassword(ctx, a.Key)
		require.NoError(t, err)
		pc, err := pgx.Connect(ctx, isotest.SharedServer(t).DSNFor(d.DB.Name, naming.LoginRole(a.Key), pw))
		if err == nil {
			pc.Close(context.Background())
		}
		return err
	}
	require.NoError(t, connectAs(c1))

	// Someone grants b's runtime role to a's login by hand; EnsureLogin with
	// a rotated secret takes it back and changes the password.
	_, err = conn.Exec(ctx, "GRANT "+pgx.Identifier{b.Role}.Sanitize()+" TO "+pgx.Identifier{naming.LoginRole(a.Key)}.Sanitize())
	require.NoError(t, err)
	c2 := credentials(t)
	_, err = newProvisioner(c2).EnsureLogin(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, []string{a.Role}, readLogin(t, conn, naming.LoginRole(a.Key)).memberOf)
	require.NoError(t, connectAs(c2))
	require.Error(t, connectAs(c1), "the old secret no longer logs in")
}

func TestDerivedCredentials(t *testing.T) {
	t.Parallel()
	_, err := tenancy.NewDerivedCredentials(make([]byte, 31))
	require.Error(t, err)
	c, err := tenancy.NewDerivedCredentials([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	k := tenancy.Key("abcdefghijklmnopqrstuvwxyz")
	pw, err := c.LoginPassword(context.Background(), k)
	require.NoError(t, err)
	// hex(HMAC-SHA256("0123456789abcdef0123456789abcdef", "abcdefghijklmnopqrstuvwxyz")),
	// as `printf %s KEY | openssl dgst -sha256 -hmac SECRET` prints it.
	require.Equal(t, "134cefd58cf4779a3b1f6c292c738240ff283cfb3cc05a9be6e62a7be67253dd", pw)
	pw2, _ := c.LoginPassword(context.Background(), k)
	require.Equal(t, pw, pw2)
	_, err = c.LoginPassword(context.Background(), "short")
	require.Error(t, err)
}

// TestNoGatewayMembership: for TenantLogin-only deployments the gateway is
// never a member of a tenant role, not even while the tenant is active, and
// EnsureLogin takes memberships granted earlier away.
func TestNoGatewayMembership(t *testing.T) {
	t.Parallel()
	d := deployment(t) // its Provisioner grants the gateway membership
	conn := super(t, d)
	ctx := ctxT(t)
	old := d.NewTenant(t, nil)
	p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole,
		Credentials: credentials(t), NoGatewayMembership: true})
	require.NoError(t, err)
	member := func(role string) bool {
		var m bool
		require.NoError(t, conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", d.DB.GatewayRole, role).Scan(&m))
		return m
	}
	require.True(t, member(old.Role))
	_, err = p.EnsureLogin(ctx, old.ID)
	require.NoError(t, err)
	require.False(t, member(old.Role), "EnsureLogin revoked the gateway's membership")

	tn, err := p.Create(ctx, "no-gateway", nil)
	require.NoError(t, err)
	require.False(t, member(tn.Role))
	_, err = p.Suspend(ctx, tn.ID)
	require.NoError(t, err)
	_, err = p.Activate(ctx, tn.ID)
	require.NoError(t, err)
	require.False(t, member(tn.Role))
	require.True(t, readLogin(t, conn, tenancy.Naming{Prefix: d.DB.Prefix}.LoginRole(tn.Key)).canLogin)
	_, err = p.Delete(ctx, tn.ID, nil)
	require.NoError(t, err)
	_, err = p.Purge(ctx, tn.ID)
	require.NoError(t, err)
}
