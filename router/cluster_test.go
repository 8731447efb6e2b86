package router_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// cluster is one PostgreSQL server of a multi-cluster test deployment.
type cluster struct {
	name  string
	db    *isotest.Database
	admin *pgxpool.Pool
	port  int
}

type clusters struct {
	d     *isotest.Deployment // the primary, with the catalog
	creds tenancy.Credentials
	all   []*cluster // primary first
	p     *provision.Provisioner
}

// startClusters starts n-1 PostgreSQL servers beside the shared one and sets
// up one deployment over all n: same roles and database on each, the
// catalog on the shared server ("default").
func startClusters(t *testing.T, n int, placement provision.Placement) *clusters {
	t.Helper()
	ctx := ctxT(t)
	cs := &clusters{creds: testCredentials(t)}
	cs.d = isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: testMigrations, Credentials: cs.creds})
	cs.all = append(cs.all, &cluster{name: "default", db: cs.d.DB, admin: cs.d.Admin, port: dsnPort(t, cs.d.DB.AdminDSN)})
	pools := map[string]*pgxpool.Pool{}
	for i := 1; i < n; i++ {
		srv, err := isotest.StartServer(ctx, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, srv.Close()) })
		db, err := srv.CreateDatabaseLike(ctx, cs.d.DB)
		require.NoError(t, err)
		admin, err := pgxpool.New(ctx, db.AdminDSN)
		require.NoError(t, err)
		t.Cleanup(admin.Close)
		c := &cluster{name: fmt.Sprintf("c%d", i), db: db, admin: admin, port: dsnPort(t, db.AdminDSN)}
		cs.all = append(cs.all, c)
		pools[c.name] = admin
	}
	var err error
	cs.p, err = provision.New(cs.d.Admin, &provision.Config{
		Naming: tenancy.Naming{Prefix: cs.d.DB.Prefix}, GatewayRole: cs.d.DB.GatewayRole, Migrations: testMigrations,
		Credentials: cs.creds, Clusters: pools, Placement: placement,
	})
	require.NoError(t, err)
	rep, err := cs.p.Init(ctx)
	require.NoError(t, err)
	require.Contains(t, rep.String(), "cluster c1: tenant owner role")
	return cs
}

func dsnPort(t *testing.T, dsn string) int {
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	p, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return p
}

func (cs *clusters) router(t *testing.T, rc router.Config) *router.Router {
	rc.Clusters = map[string]string{}
	for _, c := range cs.all[1:] {
		rc.Clusters[c.name] = c.db.GatewayDSN
	}
	if rc.Mode == router.TenantLogin {
		rc.Credentials = cs.creds
	}
	r, err := router.New(ctxT(t), cs.d.DB.GatewayDSN, &rc)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// create provisions a tenant and removes it (on its cluster) when the test
// ends.
func (cs *clusters) create(t *testing.T, id string) *tenancy.Tenant {
	ctx := ctxT(t)
	tn, err := cs.p.Create(ctx, tenancy.ID(id), nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		if cur, err := cs.p.Get(ctx, tn.ID); err == nil && cur.Status != tenancy.StatusDeleted {
			_, err = cs.p.Delete(ctx, tn.ID, nil)
			require.NoError(t, err)
		}
		if _, err := cs.p.Purge(ctx, tn.ID); err != nil && !errors.Is(err, tenancy.ErrNotFound) {
			t.Errorf("purging %s: %v", tn.ID, err)
		}
	})
	return tn
}

// where counts, on each cluster, the tenant's schema and roles.
func (cs *clusters) where(t *testing.T, tn *tenancy.Tenant) map[string]int {
	out := map[string]int{}
	for _, c := range cs.all {
		var n int
		require.NoError(t, c.admin.QueryRow(ctxT(t), `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2))`,
			tn.Schema, tenancy.Naming{Prefix: cs.d.DB.Prefix}.LoginRole(tn.Key)).Scan(&n))
		out[c.name] = n
	}
	return out
}

// TestClusters: two and three PostgreSQL servers. Tenants are spread by the
// default placement (fewest tenants), created on their cluster only, routed
// there in every mode, suspended and purged there.
func TestClusters(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			cs := startClusters(t, n, nil)
			ctx := ctxT(t)
			var tenants []*tenancy.Tenant
			perCluster := map[string]int{}
			for i := range 2 * n {
				tn := cs.create(t, fmt.Sprintf("brand-%d", i))
				tenants = append(tenants, tn)
				perCluster[tn.Cluster]++
				// Schema, runtime role and login role on its cluster only.
				for _, c := range cs.all {
					want := 0
					if c.name == tn.Cluster {
						want = 3
					}
					require.Equal(t, want, cs.where(t, tn)[c.name], "tenant %s (cluster %s) on cluster %s", tn.ID, tn.Cluster, c.name)
				}
			}
			for _, c := range cs.all {
				require.Equal(t, 2, perCluster[c.name], "least-tenants placement: %v", perCluster)
			}

			port := map[string]int{}
			for _, c := range cs.all {
				port[c.name] = c.port
			}
			for _, mode := range []router.Mode{router.SessionRole, router.TxLocal, router.TenantLogin} {
				r := cs.router(t, router.Config{Mode: mode, StatusTTL: time.Nanosecond})
				for _, tn := range tenants {
					require.NoError(t, r.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
						var p int
						if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&p); err != nil {
							return err
						}
						require.Equal(t, port[tn.Cluster], p, "%s: tenant %s served by the wrong cluster", mode, tn.ID)
						_, err := tx.Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, $2)", string(tn.ID), mode.String())
						return err
					}), "mode %s tenant %s", mode, tn.ID)
				}
				for _, tn := range tenants {
					require.NoError(t, r.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
						rows, err := tx.Query(ctx, "SELECT DISTINCT owner FROM items")
						require.NoError(t, err)
						owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
						require.NoError(t, err)
						require.Equal(t, []string{string(tn.ID)}, owners)
						return nil
					}))
				}
			}

			// Lifecycle on a tenant of another cluster: enforced there.
			var remote *tenancy.Tenant
			for _, tn := range tenants {
				if tn.Cluster != "default" {
					remote = tn
					break
				}
			}
			r := cs.router(t, router.Config{StatusTTL: time.Nanosecond})
			_, err := cs.p.Suspend(ctx, remote.ID)
			require.NoError(t, err)
			_, err = r.Acquire(ctx, remote.ID)
			require.ErrorIs(t, err, tenancy.ErrSuspended)
			var member bool
			var on *cluster
			for _, c := range cs.all {
				if c.name == remote.Cluster {
					on = c
				}
			}
			require.NoError(t, on.admin.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", cs.d.DB.GatewayRole, remote.Role).Scan(&member))
			require.False(t, member, "the gateway lost its membership on the tenant's cluster")
			_, err = cs.p.Activate(ctx, remote.ID)
			require.NoError(t, err)
			conn, err := r.Acquire(ctx, remote.ID)
			require.NoError(t, err)
			conn.Release()

			_, err = cs.p.Delete(ctx, remote.ID, nil)
			require.NoError(t, err)
			_, err = cs.p.Purge(ctx, remote.ID)
			require.NoError(t, err)
			require.Zero(t, cs.where(t, remote)[remote.Cluster], "purge removed it from its cluster")

			// A router that does not know a tenant's cluster refuses it.
			lone, err := router.New(ctx, cs.d.DB.GatewayDSN, nil)
			require.NoError(t, err)
			defer lone.Close()
			for _, tn := range tenants[1:] {
				if tn.Cluster != "default" {
					_, err = lone.Acquire(ctx, tn.ID)
					require.ErrorIs(t, err, router.ErrUnknownCluster)
					break
				}
			}
		})
	}
}

// TestClusterMove: a tenant moves to another cluster with its data while a
// writer keeps writing through the router. Every write that succeeded is on
// the new cluster, the identity sequence goes on, reads are served by the new
// cluster, and the old copy is gone.
func TestClusterMove(t *testing.T) {
	t.Parallel()
	cs := startClusters(t, 2, nil)
	ctx := ctxT(t)
	tn := cs.create(t, "mover")
	from := tn.Cluster
	to := "default"
	if from == to {
		to = "c1"
	}
	port := map[string]int{}
	for _, c := range cs.all {
		port[c.name] = c.port
	}
	for _, mode := range []router.Mode{router.TxLocal, router.TenantLogin} {
		r := cs.router(t, router.Config{Mode: mode, StatusTTL: time.Nanosecond})
		require.NoError(t, r.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO items (owner, note) SELECT $1, 'bulk-' || g FROM generate_series(1, 500) g", string(tn.ID))
			return err
		}))
	}
	require.NoError(t, cs.router(t, router.Config{}).InTx(ctx, tn.ID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO secrets VALUES (1, $1)", string(tn.ID))
		return err
	}))

	// A writer through a TxLocal router during the move.
	w := cs.router(t, router.Config{Mode: router.TxLocal, StatusTTL: time.Nanosecond})
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var ok []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- ok
				return
			default:
			}
			note := fmt.Sprintf("live-%d", i)
			if err := w.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, $2)", string(tn.ID), note)
				return err
			}); err == nil {
				ok = append(ok, note)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	res, err := cs.p.Move(ctx, tn.ID, to)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	written := <-done
	t.Logf("moved %d tables, %d rows, write pause %s, total %s; %d live writes succeeded", res.Tables, res.Rows, res.WritePause, res.Duration, len(written))
	require.Equal(t, 2, res.Tables)
	require.GreaterOrEqual(t, res.Rows, int64(1001))

	moved, err := cs.p.Get(ctx, tn.ID)
	require.NoError(t, err)
	require.Equal(t, to, moved.Cluster)
	require.Zero(t, cs.where(t, tn)[from], "old copy removed")
	require.Equal(t, 3, cs.where(t, tn)[to])

	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal, router.TenantLogin} {
		r := cs.router(t, router.Config{Mode: mode})
		require.NoError(t, r.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
			var p, bulk int
			var secret string
			require.NoError(t, tx.QueryRow(ctx, "SELECT inet_server_port(), (SELECT count(*) FROM items WHERE note LIKE 'bulk-%'), (SELECT value FROM secrets WHERE id = 1)").Scan(&p, &bulk, &secret))
			require.Equal(t, port[to], p)
			require.Equal(t, 1000, bulk)
			require.Equal(t, string(tn.ID), secret)
			rows, err := tx.Query(ctx, "SELECT note FROM items WHERE note LIKE 'live-%'")
			require.NoError(t, err)
			live, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Subset(t, live, written, "every write that succeeded during the move survived it")
			var maxID, newID int64
			require.NoError(t, tx.QueryRow(ctx, "SELECT max(id) FROM items").Scan(&maxID))
			require.NoError(t, tx.QueryRow(ctx, "INSERT INTO items (owner) VALUES ($1) RETURNING id", string(tn.ID)).Scan(&newID))
			require.Greater(t, newID, maxID, "the identity sequence moved with the data")
			return nil
		}), "mode %s", mode)
	}
}
