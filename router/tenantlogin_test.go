package router_test

import (
	"context"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func testCredentials(t testing.TB) *tenancy.DerivedCredentials {
	secret := make([]byte, 32)
	_, _ = crand.Read(secret)
	c, err := tenancy.NewDerivedCredentials(secret)
	require.NoError(t, err)
	return c
}

// newLoginDeployment starts a deployment whose tenants get login roles and
// whose router runs in TenantLogin mode with rc.
func newLoginDeployment(t *testing.T, rc router.Config) (*isotest.Deployment, *tenancy.DerivedCredentials) {
	t.Helper()
	creds := testCredentials(t)
	rc.Mode = router.TenantLogin
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: testMigrations, Router: rc, Credentials: creds})
	return d, creds
}

func loginName(d *isotest.Deployment, tn *tenancy.Tenant) string {
	return tenancy.Naming{Prefix: d.DB.Prefix}.LoginRole(tn.Key)
}

// loginDSN is a DSN that logs in directly as tn's login role.
func loginDSN(t *testing.T, d *isotest.Deployment, creds tenancy.Credentials, tn *tenancy.Tenant) string {
	pw, err := creds.LoginPassword(context.Background(), tn.Key)
	require.NoError(t, err)
	return isotest.SharedServer(t).DSNFor(d.DB.Name, loginName(d, tn), pw)
}

// TestTenantLoginEscapes: from a tenant's own connection, tenant-controlled
// SQL tries every way PostgreSQL offers to change identity; none reaches
// another tenant, because the session user is a member of its own runtime
// role only.
func TestTenantLoginEscapes(t *testing.T) {
	t.Parallel()
	d, _ := newLoginDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }

	conn, err := d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	defer conn.Release()
	var cu, su, path string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user, session_user, current_setting('search_path')").Scan(&cu, &su, &path))
	require.Equal(t, loginName(d, a), cu)
	require.Equal(t, loginName(d, a), su)
	require.Equal(t, q(a.Schema)+", pg_temp", path)
	rows, err := conn.Query(ctx, "SELECT owner FROM items")
	require.NoError(t, err)
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{string(a.ID)}, owners)

	otherSecrets := "SELECT value FROM " + pgx.Identifier{b.Schema, "secrets"}.Sanitize()
	for _, stmt := range []string{
		"SET ROLE " + q(b.Role),
		"SET ROLE " + q(loginName(d, b)),
		"SET ROLE " + q(d.DB.GatewayRole),
		"SET ROLE " + q(d.DB.OwnerRole),
		"SET ROLE " + q(tenancy.Naming{Prefix: d.DB.Prefix}.OwnerRole()),
		"SET ROLE " + q(d.DB.AdminRole),
		"SET SESSION AUTHORIZATION " + q(loginName(d, b)),
		"SET SESSION AUTHORIZATION " + q(b.Role),
		"SET SESSION AUTHORIZATION " + q(d.DB.GatewayRole),
		"SELECT set_config('role', '" + b.Role + "', false)",
		"SELECT set_config('session_authorization', '" + loginName(d, b) + "', false)",
		"BEGIN; SET LOCAL ROLE " + q(b.Role) + "; COMMIT",
		otherSecrets,
		"SELECT count(*) FROM " + pgx.Identifier{b.Schema, "items"}.Sanitize(),
		"INSERT INTO " + pgx.Identifier{b.Schema, "items"}.Sanitize() + " (owner) VALUES ('intruder')",
		"SELECT * FROM bulkhead.tenants",
		"CREATE TABLE trojan (x int)",
	} {
		_, err := conn.Exec(ctx, stmt)
		requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
		if conn.Conn().PgConn().TxStatus() != 'I' {
			_, err = conn.Exec(ctx, "ROLLBACK")
			require.NoError(t, err)
		}
	}

	// RESET ROLE and SET ROLE to its own runtime role are allowed, and stay
	// within the tenant.
	for _, stmt := range []string{"RESET ROLE", "SET ROLE " + q(a.Role), "RESET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION DEFAULT"} {
		_, err := conn.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
		_, err = conn.Exec(ctx, otherSecrets)
		requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT value FROM secrets").Scan(&v), stmt)
		require.Equal(t, string(a.ID), v)
	}

	// The login role is a member of exactly its runtime role, nothing else,
	// and nothing is a member of it.
	su2 := super(t, d)
	var memberOf, members []string
	require.NoError(t, su2.QueryRow(ctx, `SELECT
		coalesce((SELECT array_agg(r.rolname::text) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1), '{}'),
		coalesce((SELECT array_agg(u.rolname::text) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1), '{}')`,
		loginName(d, a)).Scan(&memberOf, &members))
	require.Equal(t, []string{a.Role}, memberOf)
	require.Empty(t, members)
}

func super(t *testing.T, d *isotest.Deployment) *pgx.Conn {
	conn, err := pgx.Connect(ctxT(t), d.DB.SuperDSN)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestTenantLoginLifecycle: a suspended or deleted tenant's login is refused
// by the database itself, not only by the router; activation restores it;
// purge drops the role.
func TestTenantLoginLifecycle(t *testing.T) {
	t.Parallel()
	d, creds := newLoginDeployment(t, router.Config{StatusTTL: time.Nanosecond})
	a := d.NewTenant(t, nil)
	ctx := ctxT(t)
	dsn := loginDSN(t, d, creds, a)

	direct := func() error {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	require.NoError(t, direct())
	require.NoError(t, d.Router.InTx(ctx, a.ID, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SELECT 1 FROM items"); return err }))

	_, err := d.Provisioner.Suspend(ctx, a.ID)
	require.NoError(t, err)
	requireSQLState(t, direct(), pgerrcode.InvalidAuthorizationSpecification)
	_, err = d.Router.Acquire(ctx, a.ID)
	require.ErrorIs(t, err, tenancy.ErrSuspended)

	_, err = d.Provisioner.Activate(ctx, a.ID)
	require.NoError(t, err)
	require.NoError(t, direct())
	conn, err := d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	conn.Release()

	_, err = d.Provisioner.Archive(ctx, a.ID)
	require.NoError(t, err)
	requireSQLState(t, direct(), pgerrcode.InvalidAuthorizationSpecification)
	_, err = d.Provisioner.Restore(ctx, a.ID)
	require.ErrorIs(t, err, tenancy.ErrInvalidTransition)
	_, err = d.Provisioner.Delete(ctx, a.ID, nil)
	require.NoError(t, err)
	requireSQLState(t, direct(), pgerrcode.InvalidAuthorizationSpecification)
	_, err = d.Router.Acquire(ctx, a.ID)
	require.ErrorIs(t, err, tenancy.ErrDeleted)
	_, err = d.Provisioner.Restore(ctx, a.ID)
	require.NoError(t, err)
	require.NoError(t, direct())

	require.NoError(t, d.RemoveTenant(ctx, a.ID))
	var n int
	require.NoError(t, super(t, d).QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", loginName(d, a)).Scan(&n))
	require.Zero(t, n, "purge drops the login role")
	requireSQLState(t, direct(), pgerrcode.InvalidPassword)
}

// TestTenantLoginBudget: more tenants than the global budget, hammered
// concurrently. Neither the router's count nor the server's own
// (pg_stat_activity, sampled continuously as superuser) ever exceeds the
// budget, and every row read belongs to the reading tenant.
func TestTenantLoginBudget(t *testing.T) {
	t.Parallel()
	const tenants, workers, budget = 12, 12, 4
	d, _ := newLoginDeployment(t, router.Config{MaxConns: budget, MaxConnsPerTenant: 2, AcquireTimeout: 20 * time.Second})
	ids := make([]tenancy.ID, tenants)
	for i := range ids {
		ids[i] = d.NewTenant(t, nil).ID
	}
	ctx := ctxT(t)
	r := d.Router
	sup := super(t, d)
	loginPrefix := d.DB.Prefix + `\_l\_%`

	var maxSeen atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			if err := sup.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE $1", loginPrefix).Scan(&n); err != nil {
				return
			}
			if n > maxSeen.Load() {
				maxSeen.Store(n)
			}
		}
	}()

	var ops, wrong atomic.Int64
	var errMu sync.Mutex
	var errs []error
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := ids[rand.IntN(tenants)]
				err := r.InTx(ctx, id, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO items (owner) VALUES ($1)", string(id)); err != nil {
						return err
					}
					rows, err := tx.Query(ctx, "SELECT DISTINCT owner FROM items")
					if err != nil {
						return err
					}
					owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
					if err != nil {
						return err
					}
					if len(owners) != 1 || owners[0] != string(id) {
						wrong.Add(1)
					}
					return nil
				})
				if err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled

	st := r.TenantPoolStat()
	t.Logf("ops %d, pools created %d evicted %d trimmed %d, router max conns %d, server max %d, errors %d",
		ops.Load(), st.Created, st.Evicted, st.Trimmed, st.MaxConns, maxSeen.Load(), len(errs))
	require.Empty(t, errs)
	require.Zero(t, wrong.Load())
	require.Greater(t, ops.Load(), int64(tenants))
	require.LessOrEqual(t, st.MaxConns, budget)
	require.LessOrEqual(t, maxSeen.Load(), int64(budget))
	require.Greater(t, maxSeen.Load(), int64(0), "the sampler saw the tenants' connections")
	require.Greater(t, st.Created, int64(budget/2), "more pools than the budget holds were opened")
	require.Greater(t, st.Evicted+st.Trimmed, int64(0))
	// A trim started by the last checkouts holds its idle connection until
	// it has closed it; once that finishes nothing may remain checked out.
	require.Eventually(t, func() bool { return r.TenantPoolStat().InUse == 0 }, 10*time.Second, 20*time.Millisecond,
		"checkouts left held: %d", r.TenantPoolStat().InUse)
}

// TestTenantLoginWaitsAndCaps: a tenant at its own cap, and a router at its
// global budget with every connection checked out, give *tenancy.BusyError
// after AcquireTimeout; a released connection is closed to let the waiting
// tenant in.
func TestTenantLoginWaitsAndCaps(t *testing.T) {
	t.Parallel()
	d, _ := newLoginDeployment(t, router.Config{MaxConns: 1, MaxConnsPerTenant: 1, AcquireTimeout: 300 * time.Millisecond})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	ctx := ctxT(t)
	r := d.Router

	held, err := r.Acquire(ctx, a.ID)
	require.NoError(t, err)
	_, err = r.Acquire(ctx, a.ID)
	var be *tenancy.BusyError
	require.ErrorAs(t, err, &be, "per-tenant cap")
	require.Equal(t, a.ID, be.ID)
	_, err = r.Acquire(ctx, b.ID)
	require.ErrorAs(t, err, &be, "global budget")
	require.Equal(t, b.ID, be.ID)
	require.ErrorIs(t, err, tenancy.ErrBusy)

	// b waits while a holds the only connection; a's release closes it.
	done := make(chan error, 1)
	go func() {
		c, err := r.Acquire(context.Background(), b.ID)
		if err == nil {
			c.Release()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	held.Release()
	require.NoError(t, <-done)
	st := r.TenantPoolStat()
	require.LessOrEqual(t, st.MaxConns, 1)
	require.Positive(t, st.Timeouts)
}

// TestTenantLoginIdlePoolsReclaimed: pools that served nothing for
// PoolIdleTimeout are closed with their connections, on the server too.
func TestTenantLoginIdlePoolsReclaimed(t *testing.T) {
	t.Parallel()
	d, _ := newLoginDeployment(t, router.Config{PoolIdleTimeout: 300 * time.Millisecond})
	ctx := ctxT(t)
	var ids []tenancy.ID
	for range 3 {
		ids = append(ids, d.NewTenant(t, nil).ID)
	}
	// Held checkouts keep their pools however long this takes.
	var held []*router.Conn
	for _, id := range ids {
		c, err := d.Router.Acquire(ctx, id)
		require.NoError(t, err)
		held = append(held, c)
	}
	st := d.Router.TenantPoolStat()
	require.Equal(t, 3, st.Pools)
	require.Equal(t, 3, st.Conns)
	sup := super(t, d)
	count := func() int {
		var n int
		require.NoError(t, sup.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE $1", d.DB.Prefix+`\_l\_%`).Scan(&n))
		return n
	}
	require.Equal(t, 3, count())
	for _, c := range held {
		c.Release()
	}
	require.Eventually(t, func() bool {
		st := d.Router.TenantPoolStat()
		return st.Pools == 0 && st.Conns == 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, count(), "the server closed the backends before the budget was given back")
	require.Equal(t, int64(3), d.Router.TenantPoolStat().Reaped)

	// A reclaimed tenant is served again on demand.
	require.NoError(t, d.Router.InTx(ctx, ids[0], func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SELECT 1"); return err }))
}

// TestTenantLoginNeedsCredentials: the mode refuses to start without them.
func TestTenantLoginNeedsCredentials(t *testing.T) {
	t.Parallel()
	_, err := router.New(context.Background(), "postgres://x@127.0.0.1:1/x", &router.Config{Mode: router.TenantLogin})
	require.Error(t, err)
	require.Contains(t, err.Error(), "Credentials")
}

// TestTenantLoginWrongSecret: a router whose secret differs from the
// provisioner's cannot log in, and says what to check.
func TestTenantLoginWrongSecret(t *testing.T) {
	t.Parallel()
	d, _ := newLoginDeployment(t, router.Config{})
	a := d.NewTenant(t, nil)
	r := newRouter(t, d, router.Config{Mode: router.TenantLogin, Credentials: testCredentials(t)})
	_, err := r.Acquire(ctxT(t), a.ID)
	require.Error(t, err)
	require.False(t, errors.Is(err, tenancy.ErrBusy))
	require.Contains(t, err.Error(), "Credentials")
}

// TestTenantLoginWithoutGatewayMembership: in a TenantLogin-only deployment
// (provision.Config.NoGatewayMembership) tenants are served, and the
// gateway itself can switch to none of them.
func TestTenantLoginWithoutGatewayMembership(t *testing.T) {
	t.Parallel()
	d, creds := newLoginDeployment(t, router.Config{})
	ctx := ctxT(t)
	p, err := provision.New(d.Admin, &provision.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}, GatewayRole: d.DB.GatewayRole,
		Migrations: testMigrations, Credentials: creds, NoGatewayMembership: true})
	require.NoError(t, err)
	tn, err := p.Create(ctx, "tl-only", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.RemoveTenant(context.Background(), tn.ID) })

	plant(t, d.Router, tn.ID)
	shared := newRouter(t, d, router.Config{})
	_, err = shared.Acquire(ctx, tn.ID)
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
	gw, err := pgx.Connect(ctx, d.DB.GatewayDSN)
	require.NoError(t, err)
	defer gw.Close(context.Background())
	_, err = gw.Exec(ctx, "SET ROLE "+pgx.Identifier{tn.Role}.Sanitize())
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
}
