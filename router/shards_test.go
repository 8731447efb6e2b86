package router_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

const testShards = 3

// newShardDeployment starts a deployment with testShards gateway shards and a
// router using them.
func newShardDeployment(t *testing.T, rc router.Config) *isotest.Deployment {
	t.Helper()
	return isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: testMigrations, Router: rc, GatewayShards: testShards})
}

// shardLogin is the login that serves tn in d.
func shardLogin(d *isotest.Deployment, tn *tenancy.Tenant) string {
	return tenancy.GatewayShardRole(d.DB.GatewayRole, tenancy.ShardOf(tn.Key, testShards), testShards)
}

// sameShardPair creates tenants until two share a shard and returns them
// with the others created on the way.
func sameShardPair(t *testing.T, d *isotest.Deployment) (a, b *tenancy.Tenant, all []*tenancy.Tenant) {
	t.Helper()
	seen := map[int]*tenancy.Tenant{}
	for {
		tn := d.NewTenant(t, nil)
		all = append(all, tn)
		s := tenancy.ShardOf(tn.Key, testShards)
		if other := seen[s]; other != nil {
			return other, tn, all
		}
		seen[s] = tn
	}
}

// TestGatewayShardsRouting: every tenant is served as its shard's login, sees
// only its own rows, and can name no other tenant's tables; SQL that escapes
// the tenant role reaches only the tenants of its own shard.
func TestGatewayShardsRouting(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			d := newShardDeployment(t, router.Config{Mode: mode, MaxConns: 4})
			ctx := ctxT(t)
			a, b, tenants := sameShardPair(t, d)
			for len(tenants) < 5 {
				tenants = append(tenants, d.NewTenant(t, nil))
			}
			var other *tenancy.Tenant // a tenant on another shard than a
			for _, tn := range tenants {
				plant(t, d.Router, tn.ID)
				if other == nil && shardLogin(d, tn) != shardLogin(d, a) {
					other = tn
				}
			}
			if other == nil {
				for other == nil || shardLogin(d, other) == shardLogin(d, a) {
					other = d.NewTenant(t, nil)
				}
				plant(t, d.Router, other.ID)
				tenants = append(tenants, other)
			}

			for _, tn := range tenants {
				err := d.Router.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
					var owner, user, session string
					require.NoError(t, tx.QueryRow(ctx, "SELECT owner, current_user, session_user FROM items").Scan(&owner, &user, &session))
					require.Equal(t, string(tn.ID), owner)
					require.Equal(t, tn.Role, user)
					require.Equal(t, shardLogin(d, tn), session, "served by its shard's login")
					for _, x := range tenants {
						if x == tn {
							continue
						}
						_, err := tx.Exec(ctx, "SAVEPOINT s")
						require.NoError(t, err)
						_, err = tx.Exec(ctx, "SELECT value FROM "+pgx.Identifier{x.Schema, "secrets"}.Sanitize())
						requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
						_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
						require.NoError(t, err)
					}
					return nil
				})
				require.NoError(t, err)
				var owner string
				require.NoError(t, d.Router.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
				require.Equal(t, string(tn.ID), owner)
			}

			// Tenant-controlled SQL: a SET ROLE to a tenant of another shard
			// is refused by the database; to a tenant of the same shard it is
			// not (the shared-pool modes' documented residual, bounded by the
			// shard).
			err := d.Router.InTx(ctx, a.ID, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SAVEPOINT s")
				require.NoError(t, err)
				_, err = tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{other.Role}.Sanitize())
				requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
				_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
				require.NoError(t, err)
				_, err = tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{b.Role}.Sanitize())
				require.NoError(t, err, "same shard: the residual of the shared-pool modes")
				return nil
			})
			require.NoError(t, err)

			st := d.Router.ShardStat()
			require.Equal(t, 4, st.Budget)
			require.LessOrEqual(t, st.MaxConns, st.Budget)
			require.LessOrEqual(t, st.Pools, testShards)
			require.Positive(t, st.Pools)
		})
	}
}

// TestGatewayShardsResetRole: a tenant that escapes its role with RESET ROLE
// lands on its shard's login, which reads nothing and may switch to no
// tenant of another shard.
func TestGatewayShardsResetRole(t *testing.T) {
	t.Parallel()
	d := newShardDeployment(t, router.Config{})
	a, b, _ := sameShardPair(t, d)
	var other *tenancy.Tenant
	for other == nil || shardLogin(d, other) == shardLogin(d, a) {
		other = d.NewTenant(t, nil)
	}
	ctx := ctxT(t)
	conn, err := d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "RESET ROLE")
	require.NoError(t, err)
	var user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
	require.Equal(t, shardLogin(d, a), user)
	for _, tn := range []*tenancy.Tenant{a, b, other} {
		_, err = conn.Exec(ctx, "SELECT * FROM "+pgx.Identifier{tn.Schema, "secrets"}.Sanitize())
		requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
	}
	_, err = conn.Exec(ctx, "SET ROLE "+pgx.Identifier{other.Role}.Sanitize())
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
	_, err = conn.Exec(ctx, "SET ROLE "+pgx.Identifier{d.DB.GatewayRole}.Sanitize())
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
	_, err = conn.Exec(ctx, "SELECT * FROM bulkhead.tenants")
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
}

// TestGatewayShardsWrongShardFailsClosed: a tenant whose membership was
// granted to another shard's login cannot be served, in any path, until
// Reshard repairs it.
func TestGatewayShardsWrongShardFailsClosed(t *testing.T) {
	t.Parallel()
	d := newShardDeployment(t, router.Config{})
	tn := d.NewTenant(t, nil)
	plant(t, d.Router, tn.ID)
	ctx := ctxT(t)
	own := shardLogin(d, tn)
	wrong := tenancy.GatewayShardRole(d.DB.GatewayRole, (tenancy.ShardOf(tn.Key, testShards)+1)%testShards, testShards)
	_, err := d.Admin.Exec(ctx, "REVOKE "+pgx.Identifier{tn.Role}.Sanitize()+" FROM "+pgx.Identifier{own}.Sanitize()+
		"; GRANT "+pgx.Identifier{tn.Role}.Sanitize()+" TO "+pgx.Identifier{wrong}.Sanitize())
	require.NoError(t, err)

	requireRefused := func(err error) {
		t.Helper()
		require.ErrorIs(t, err, router.ErrRoleRefused)
		requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
		require.NotErrorIs(t, err, tenancy.ErrNotActive)
	}
	sr := newRouter(t, d, router.Config{GatewayShards: testShards})
	c, err := sr.Acquire(ctx, tn.ID)
	require.Nil(t, c)
	requireRefused(err)
	var owner string
	requireRefused(sr.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
	require.Empty(t, owner)
	tl := newRouter(t, d, router.Config{Mode: router.TxLocal, GatewayShards: testShards})
	requireRefused(tl.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT owner FROM items").Scan(&owner)
	}))
	requireRefused(tl.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
	require.Empty(t, owner)

	// A router that disagrees on the shard count fails the same way.
	// A router that disagrees on the shard count: it logs in as another
	// shard's login (or one that does not exist) and fails closed, unless
	// that login happens to hold the membership.
	mismatch := newRouter(t, d, router.Config{GatewayShards: testShards + 1})
	c, err = mismatch.Acquire(ctx, tn.ID)
	if tenancy.GatewayShardRole(d.DB.GatewayRole, tenancy.ShardOf(tn.Key, testShards+1), testShards+1) == wrong {
		require.NoError(t, err)
		c.Release()
	} else {
		require.Error(t, err)
		require.Nil(t, c)
	}

	res, err := d.Provisioner.Reshard(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Granted)
	require.Equal(t, 1, res.Revoked)
	require.NoError(t, sr.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner))
	require.Equal(t, string(tn.ID), owner)
}

// TestGatewayShardsBudget: however checkouts spread over the shards, the
// server never sees more of the router's connections than its budget.
func TestGatewayShardsBudget(t *testing.T) {
	t.Parallel()
	const budget = 3
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			d := newShardDeployment(t, router.Config{Mode: mode, MaxConns: budget, AcquireTimeout: 20 * time.Second})
			ctx := ctxT(t)
			var tenants []*tenancy.Tenant
			shards := map[int]bool{}
			for len(tenants) < 6 || len(shards) < testShards {
				tn := d.NewTenant(t, nil)
				tenants = append(tenants, tn)
				shards[tenancy.ShardOf(tn.Key, testShards)] = true
			}
			for _, tn := range tenants {
				plant(t, d.Router, tn.ID)
			}

			super, err := pgx.Connect(ctx, d.DB.SuperDSN)
			require.NoError(t, err)
			defer super.Close(context.Background())
			var seen atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan error, 1)
			go func() {
				var err error
				for {
					select {
					case <-stop:
						sampled <- err
						return
					default:
					}
					var n int64
					if err = super.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
						AND usename LIKE $1 || '\_s%'`, d.DB.GatewayRole).Scan(&n); err != nil {
						sampled <- err
						return
					}
					if n > seen.Load() {
						seen.Store(n)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()

			var wg sync.WaitGroup
			var ops atomic.Int64
			errs := make(chan error, 16)
			deadline := time.Now().Add(1500 * time.Millisecond)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						tn := tenants[rand.IntN(len(tenants))]
						var owner string
						var err error
						if g%2 == 0 {
							err = d.Router.DB(tn.ID).QueryRow(ctx, "SELECT owner FROM items").Scan(&owner)
						} else {
							err = d.Router.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
								return tx.QueryRow(ctx, "SELECT owner FROM items").Scan(&owner)
							})
						}
						if err == nil && owner != string(tn.ID) {
							err = fmt.Errorf("tenant %s read %s's row", tn.ID, owner)
						}
						if err != nil {
							errs <- err
							return
						}
						ops.Add(1)
					}
				}()
			}
			wg.Wait()
			close(stop)
			require.NoError(t, <-sampled)
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Positive(t, ops.Load())
			require.Positive(t, seen.Load(), "the sampler saw the router's connections")
			require.LessOrEqual(t, seen.Load(), int64(budget), "connections seen by the server")
			st := d.Router.ShardStat()
			require.LessOrEqual(t, st.MaxConns, budget)
			require.Equal(t, testShards, st.Pools)
			t.Logf("%d ops over %d shards with a budget of %d: %+v", ops.Load(), testShards, budget, st)
		})
	}
}

// TestGatewayShardsHygiene: the hygiene suite on one backend of a shard,
// shared by two tenants of that shard.
func TestGatewayShardsHygiene(t *testing.T) {
	t.Parallel()
	d := newShardDeployment(t, router.Config{})
	r := newRouter(t, d, router.Config{GatewayShards: testShards, MaxConns: 1})
	a, b, _ := sameShardPair(t, d)
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
				var user, session string
				require.NoError(t, c.QueryRow(ctx, "SELECT current_user, session_user").Scan(&user, &session))
				require.Equal(t, b.Role, user)
				require.Equal(t, shardLogin(d, b), session)
			})
			require.Equal(t, pidA, pidB, "the test needs both tenants on one backend")
			require.False(t, leaked, "%s survived the switch from A to B", lo.name)
		})
	}
}

func TestGatewayShardsConfig(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	for _, c := range []router.Config{
		{GatewayShards: 2, Affinity: 1},
		{GatewayShards: -1},
		{GatewayShards: tenancy.MaxGatewayShards + 1},
	} {
		_, err := router.New(ctx, "postgres://x@127.0.0.1:1/db", &c)
		require.ErrorContains(t, err, "GatewayShards", "%+v", c)
	}
	// A shard login that cannot log in: a clear error, no connection.
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: testMigrations})
	tn := d.NewTenant(t, nil)
	r := newRouter(t, d, router.Config{GatewayShards: 2, ConfigurePool: func(c *pgxpool.Config) { c.ConnConfig.ConnectTimeout = 5 * time.Second }})
	_, err := r.Acquire(ctx, tn.ID)
	require.ErrorContains(t, err, "SetGatewayPassword")
	require.False(t, errors.Is(err, tenancy.ErrNotActive))
}

// TestGatewayShardsIsotest: the whole attack catalogue against a sharded
// router, in both shared-pool modes (the harness puts its victim on the
// attacker's shard).
func TestGatewayShardsIsotest(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			d := isotest.NewDeployment(t, &isotest.DeploymentOpts{GatewayShards: testShards, Router: router.Config{Mode: mode, StatementTimeout: 2 * time.Second}})
			rep := isotest.Run(t, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}, nil)
			require.NotEmpty(t, rep.Results)
			require.False(t, rep.Failed())
		})
	}
}
