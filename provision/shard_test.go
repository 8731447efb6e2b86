package provision_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// gatewayMembers returns the gateway logins (the gateway and its shards)
// that are members of role, sorted.
func gatewayMembers(t *testing.T, pool *pgxpool.Pool, gateway, role string) []string {
	t.Helper()
	rows, err := pool.Query(ctxT(t), `SELECT m.rolname FROM pg_auth_members a
		JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
		WHERE r.rolname = $1 AND (m.rolname = $2 OR m.rolname LIKE $2 || '\_s%') ORDER BY 1`, role, gateway)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	if len(out) == 0 {
		return nil
	}
	return out
}

// shardTenants returns, per gateway login, the runtime roles it is a member of.
func shardTenants(t *testing.T, pool *pgxpool.Pool, gateway string) map[string][]string {
	t.Helper()
	rows, err := pool.Query(ctxT(t), `SELECT m.rolname, r.rolname FROM pg_auth_members a
		JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
		WHERE m.rolname = $1 OR m.rolname LIKE $1 || '\_s%' ORDER BY 1, 2`, gateway)
	require.NoError(t, err)
	out := map[string][]string{}
	var m, r string
	_, err = pgx.ForEachRow(rows, []any{&m, &r}, func() error {
		out[m] = append(out[m], r)
		return nil
	})
	require.NoError(t, err)
	return out
}

func shardDeployment(t *testing.T, shards int) *isotest.Deployment {
	return isotest.NewDeployment(t, &isotest.DeploymentOpts{GatewayShards: shards})
}

func TestShardOfStable(t *testing.T) {
	t.Parallel()
	// The function is a contract between provisioners and routers of any
	// version: these values (FNV-1a 32 of the key, mod 40, checked by hand) must
	// never change.
	for k, want := range map[tenancy.Key]int{
		"aaaaaaaaaaaaaaaaaaaaaaaaaa": 15,
		"zzzzzzzzzzzzzzzzzzzzzzzzzz": 29,
		"abcdefghijklmnopqrstuvwxyz": 26,
	} {
		require.Equal(t, want, tenancy.ShardOf(k, 40), "key %s", k)
		require.Equal(t, 0, tenancy.ShardOf(k, 1))
		require.Equal(t, 0, tenancy.ShardOf(k, 0))
	}
	counts := make([]int, 8)
	for range 8000 {
		counts[tenancy.ShardOf(tenancy.NewKey(), 8)]++
	}
	for i, c := range counts {
		require.InDelta(t, 1000, c, 200, "shard %d of 8 got %d of 8000 keys", i, c)
	}
	require.Equal(t, "bh_gateway_s3", tenancy.GatewayShardRole("bh_gateway", 3, 4))
	require.Equal(t, "bh_gateway", tenancy.GatewayShardRole("bh_gateway", 0, 1))
	require.NoError(t, tenancy.ValidateGatewayShards("bh_gateway", 10_000))
	require.Error(t, tenancy.ValidateGatewayShards(strings.Repeat("g", 61), 10))
	require.Error(t, tenancy.ValidateGatewayShards("bh_gateway", -1))
	_, err := provision.New(&pgxpool.Pool{}, &provision.Config{GatewayShards: tenancy.MaxGatewayShards + 1})
	require.ErrorContains(t, err, "GatewayShards")
}

// TestGatewayShardsProvision: Init creates the shard logins like the
// gateway; every lifecycle operation grants and revokes membership on the
// tenant's shard login only.
func TestGatewayShardsProvision(t *testing.T) {
	t.Parallel()
	const shards = 3
	d := shardDeployment(t, shards)
	ctx := ctxT(t)
	gw := d.DB.GatewayRole

	states := map[string]provision.CheckState{}
	for _, c := range d.InitReport.Checks {
		states[c.Name] = c.State
	}
	require.Equal(t, provision.Applied, states["gateway shard roles"], d.InitReport.String())
	require.Equal(t, provision.NotApplied, states["gateway shard logins"], "created NOLOGIN until SetGatewayPassword")
	rep, err := d.Provisioner.Init(ctx)
	require.NoError(t, err)
	states = map[string]provision.CheckState{}
	for _, c := range rep.Checks {
		states[c.Name] = c.State
	}
	require.Equal(t, provision.InPlace, states["gateway shard roles"], rep.String())
	require.NotContains(t, states, "gateway shard logins", "SetGatewayPassword made them LOGIN")

	logins := d.Provisioner.GatewayLogins()
	require.Len(t, logins, shards)
	for i, l := range logins {
		require.Equal(t, fmt.Sprintf("%s_s%d", gw, i), l)
		var login, inherit, super, createRole, createDB, bypass, connect bool
		require.NoError(t, d.Admin.QueryRow(ctx, `SELECT rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
			has_database_privilege(rolname, current_database(), 'CONNECT') FROM pg_roles WHERE rolname = $1`, l).
			Scan(&login, &inherit, &super, &createRole, &createDB, &bypass, &connect))
		require.True(t, login && connect, l)
		require.False(t, inherit || super || createRole || createDB || bypass, l)
		// The router's prepared switch calls set_config as the shard login.
		var setConfig bool
		require.NoError(t, d.Admin.QueryRow(ctx, `SELECT has_function_privilege($1, 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE')`, l).Scan(&setConfig))
		require.True(t, setConfig, "%s must be able to execute set_config", l)
	}

	var tenants []*tenancy.Tenant
	for range 6 {
		tenants = append(tenants, d.NewTenant(t, nil))
	}
	want := map[string][]string{}
	for _, tn := range tenants {
		l := logins[tenancy.ShardOf(tn.Key, shards)]
		want[l] = append(want[l], tn.Role)
	}
	for l := range want {
		sort.Strings(want[l])
	}
	require.Equal(t, want, shardTenants(t, d.Admin, gw), "each shard login is a member of exactly its tenants; the gateway of none")

	tn := tenants[0]
	own := []string{logins[tenancy.ShardOf(tn.Key, shards)]}
	for _, step := range []struct {
		op   func(context.Context, tenancy.ID) (*tenancy.Tenant, error)
		want []string
	}{
		{d.Provisioner.Suspend, nil},
		{d.Provisioner.Activate, own},
		{d.Provisioner.Archive, nil},
		{d.Provisioner.Activate, own},
		{func(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
			return d.Provisioner.Delete(ctx, id, nil)
		}, nil},
		{d.Provisioner.Restore, own},
	} {
		_, err := step.op(ctx, tn.ID)
		require.NoError(t, err)
		require.Equal(t, step.want, gatewayMembers(t, d.Admin, gw, tn.Role))
	}
	_, err = d.Provisioner.Delete(ctx, tn.ID, nil)
	require.NoError(t, err)
	_, err = d.Provisioner.Purge(ctx, tn.ID)
	require.NoError(t, err)
	var exists bool
	require.NoError(t, d.Admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", tn.Role).Scan(&exists))
	require.False(t, exists)
	delete(want, own[0])
	for _, x := range tenants[1:] {
		if l := logins[tenancy.ShardOf(x.Key, shards)]; l == own[0] {
			want[l] = append(want[l], x.Role)
		}
	}
	for l := range want {
		sort.Strings(want[l])
	}
	require.Equal(t, want, shardTenants(t, d.Admin, gw), "the other tenants are untouched")
}

// TestReshard: changing the shard count and running Reshard moves every
// membership to the new shard login, in two steps with KeepOthers; a second
// run changes nothing.
func TestReshard(t *testing.T) {
	t.Parallel()
	d := shardDeployment(t, 3)
	ctx := ctxT(t)
	gw := d.DB.GatewayRole
	var tenants []*tenancy.Tenant
	for range 5 {
		tenants = append(tenants, d.NewTenant(t, nil))
	}
	suspended := tenants[4]
	_, err := d.Provisioner.Suspend(ctx, suspended.ID)
	require.NoError(t, err)

	res, err := d.Provisioner.Reshard(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, &provision.ReshardResult{Tenants: 5}, res, "already in line")

	for _, n := range []int{5, 0} {
		cfg := d.Provisioner.Config()
		cfg.GatewayShards = n
		p, err := provision.New(d.Admin, &cfg)
		require.NoError(t, err)
		_, err = p.Init(ctx)
		require.NoError(t, err)
		before := map[tenancy.ID][]string{}
		for _, tn := range tenants {
			before[tn.ID] = gatewayMembers(t, d.Admin, gw, tn.Role)
		}

		res, err := p.Reshard(ctx, &provision.ReshardOpts{KeepOthers: true, Batch: 2})
		require.NoError(t, err)
		require.Zero(t, res.Revoked)
		for _, tn := range tenants {
			got := gatewayMembers(t, d.Admin, gw, tn.Role)
			if tn == suspended {
				require.Empty(t, got)
				continue
			}
			require.Contains(t, got, tenancy.GatewayShardRole(gw, tenancy.ShardOf(tn.Key, n), n))
			require.Subset(t, got, before[tn.ID], "KeepOthers revokes nothing")
		}

		_, err = p.Reshard(ctx, nil)
		require.NoError(t, err)
		for _, tn := range tenants {
			var want []string
			if tn != suspended {
				want = []string{tenancy.GatewayShardRole(gw, tenancy.ShardOf(tn.Key, n), n)}
			}
			require.Equal(t, want, gatewayMembers(t, d.Admin, gw, tn.Role), "tenant %s with %d shards", tn.ID, n)
		}
		res, err = p.Reshard(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, &provision.ReshardResult{Tenants: 5}, res, "idempotent")
	}
}

// TestGatewayShardsMove: Move grants the gateway shard membership on the
// new cluster and the old copy loses it with everything else.
func TestGatewayShardsMove(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := shardDeployment(t, 3)
	srv, err := isotest.StartServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	db, err := srv.CreateDatabaseLike(ctx, d.DB)
	require.NoError(t, err)
	admin, err := pgxpool.New(ctx, db.AdminDSN)
	require.NoError(t, err)
	t.Cleanup(admin.Close)

	cfg := d.Provisioner.Config()
	cfg.Clusters = map[string]*pgxpool.Pool{"c1": admin}
	cfg.Placement = fixedPlacement("default")
	p, err := provision.New(d.Admin, &cfg)
	require.NoError(t, err)
	rep, err := p.Init(ctx)
	require.NoError(t, err)
	require.Contains(t, rep.String(), "cluster c1: gateway shard roles")

	tn, err := p.Create(ctx, "moving", nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = p.Delete(context.Background(), tn.ID, nil)
		_, _ = p.Purge(context.Background(), tn.ID)
	})
	shard := tenancy.GatewayShardRole(d.DB.GatewayRole, tenancy.ShardOf(tn.Key, 3), 3)
	require.Equal(t, []string{shard}, gatewayMembers(t, d.Admin, d.DB.GatewayRole, tn.Role))
	_, err = p.Move(ctx, tn.ID, "c1")
	require.NoError(t, err)
	require.Equal(t, []string{shard}, gatewayMembers(t, admin, d.DB.GatewayRole, tn.Role))
	require.Empty(t, gatewayMembers(t, d.Admin, d.DB.GatewayRole, tn.Role))
}
