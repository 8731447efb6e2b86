package provision

// Gateway shards.
//
// On PostgreSQL the first SET ROLE of a session computes the session user's
// role memberships, in time that grows faster than linearly with their
// number, and every GRANT or REVOKE of a membership anywhere in the cluster
// makes every backend compute them again; each backend also caches catalog
// entries of every tenant it serves. With one gateway that is a member of
// every tenant role, both grow with the number of tenants.
// Config.GatewayShards = N splits the gateway into N logins,
// "<GatewayRole>_s<i>", each a member of the runtime roles of its own
// tenants only (tenancy.ShardOf(key, N)); a router with the same N keeps a
// pool per shard and serves each tenant from its shard's pool. Both costs are
// then bounded by the shard's size (docs/BENCHMARKS.md has the numbers),
// at the price of N logins and N pools sharing the router's connection
// budget.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// shards returns the number of gateway shards in effect (1: the gateway).
func (p *Provisioner) shards() int { return max(1, p.cfg.GatewayShards) }

// gatewayFor returns the login granted membership in tenant key's runtime
// role: its gateway shard, or the gateway without shards.
func (p *Provisioner) gatewayFor(k tenancy.Key) string {
	n := p.shards()
	return tenancy.GatewayShardRole(p.cfg.GatewayRole, tenancy.ShardOf(k, n), n)
}

// GatewayLogins returns the logins of the request path in shared-pool modes:
// the gateway shards when Config.GatewayShards > 1, else the gateway.
func (p *Provisioner) GatewayLogins() []string {
	n := p.shards()
	out := make([]string, n)
	for i := range out {
		out[i] = tenancy.GatewayShardRole(p.cfg.GatewayRole, i, n)
	}
	return out
}

// initGatewayShards creates or hardens the shard logins (Config.GatewayShards
// > 1) exactly like the gateway, reporting them together.
func (p *Provisioner) initGatewayShards(ctx context.Context, tx pgx.Tx, rep *InitReport, _, db string) error {
	if p.shards() == 1 {
		return nil
	}
	var created, fixed, noLogin, owning, noConnect []string
	for _, name := range p.GatewayLogins() {
		g, err := hardenGatewayRole(ctx, tx, name, db)
		if err != nil {
			return fmt.Errorf("gateway shard: %w", err)
		}
		if g.created {
			created = append(created, name)
		}
		if g.fixed != "" {
			fixed = append(fixed, g.fixed)
		}
		if !g.login {
			noLogin = append(noLogin, name)
		}
		if g.owned > 0 {
			owning = append(owning, fmt.Sprintf("%s (%d)", name, g.owned))
		}
		if g.connectErr != nil {
			noConnect = append(noConnect, name)
		}
	}
	n := p.shards()
	first, last := tenancy.GatewayShardRole(p.cfg.GatewayRole, 0, n), tenancy.GatewayShardRole(p.cfg.GatewayRole, n-1, n)
	switch {
	case len(created) > 0 || len(fixed) > 0:
		detail := fmt.Sprintf("%d shard logins %q to %q", n, first, last)
		if len(created) > 0 {
			detail += fmt.Sprintf("; created %d NOLOGIN NOINHERIT", len(created))
		}
		if len(fixed) > 0 {
			detail += "; " + strings.Join(fixed, "; ")
		}
		rep.add("gateway shard roles", Applied, "%s", detail)
	default:
		rep.add("gateway shard roles", InPlace, "%d shard logins %q to %q are NOINHERIT with no superuser, CREATEROLE, CREATEDB or BYPASSRLS", n, first, last)
	}
	if len(noLogin) > 0 {
		rep.add("gateway shard logins", NotApplied, "%d shard logins cannot log in (%s); give them the gateway's password with Provisioner.SetGatewayPassword (the router logs in to every shard with the password of its DSN)", len(noLogin), abbreviate(noLogin))
	}
	if len(owning) > 0 {
		rep.add("gateway shards own nothing", NotApplied, "shard logins own relations, schemas or functions in this database: %s; reassign them (REASSIGN OWNED BY ... TO ...)", abbreviate(owning))
	} else {
		rep.add("gateway shards own nothing", InPlace, "")
	}
	if len(noConnect) > 0 {
		rep.add("gateway shard CONNECT", NotApplied, "could not grant CONNECT on %q to %s", db, abbreviate(noConnect))
	}
	return nil
}

// abbreviate lists names, eliding the middle of long lists.
func abbreviate(names []string) string {
	if len(names) <= 4 {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:2], ", ") + ", ... (" + strconv.Itoa(len(names)-3) + " more), " + names[len(names)-1]
}

// SetGatewayPassword makes the gateway and every gateway shard login (on
// every cluster) able to log in with password, so that a router whose DSN
// logs in as the gateway with it can log in to every shard too. Like login
// roles (login.go), the server receives a SCRAM-SHA-256 verifier computed
// here, never the password. The password must be printable ASCII without
// spaces.
func (p *Provisioner) SetGatewayPassword(ctx context.Context, password string) error {
	if password == "" {
		return fmt.Errorf("provision: SetGatewayPassword: the password is empty")
	}
	logins := append([]string{p.cfg.GatewayRole}, p.GatewayLogins()...)
	if p.shards() == 1 {
		logins = logins[:1]
	}
	for _, cluster := range p.ClusterNames() {
		pool, _, err := p.clusterPool(cluster)
		if err != nil {
			return err
		}
		err = txOn(ctx, pool, func(tx pgx.Tx) error {
			var stmts []string
			for _, name := range logins {
				v, err := scramVerifier(password)
				if err != nil {
					return err
				}
				stmts = append(stmts, "ALTER ROLE "+quote(name)+" LOGIN PASSWORD "+literal(v))
			}
			_, err := tx.Exec(ctx, strings.Join(stmts, "; "))
			return err
		})
		if err != nil {
			return fmt.Errorf("provision: setting the gateway logins' password on cluster %q: %w", cluster, err)
		}
	}
	return nil
}

// ReshardOpts are options for Reshard. A nil *ReshardOpts means all defaults.
type ReshardOpts struct {
	// KeepOthers only grants the memberships the current Config.GatewayShards
	// needs and revokes none, so that routers still running with the old
	// shard count keep working during a rolling change; run Reshard again
	// without it once every router has the new count. Default: false.
	KeepOthers bool
	// Batch is how many GRANT and REVOKE statements run per transaction.
	// Default: 500.
	Batch int
}

// ReshardResult says what Reshard changed.
type ReshardResult struct {
	// Tenants is how many catalog tenants were checked.
	Tenants int
	// Granted and Revoked count the memberships changed.
	Granted, Revoked int
}

// Reshard brings the gateway memberships of every tenant in line with the
// current Config.GatewayShards (after changing it, or to repair them): each
// active tenant's runtime role is granted to its shard login (the gateway
// with no shards) and, unless opts.KeepOthers, revoked from the gateway and
// every other "<GatewayRole>_s<i>" login. It is idempotent: a second run
// changes nothing. Run Init first, so the shard logins exist. Every change
// invalidates the membership cache of every backend, as any GRANT does;
// tenant lifecycle operations that run at the same time may leave a tenant
// out, and a second run catches up. With Config.NoGatewayMembership, no
// gateway login keeps any membership.
func (p *Provisioner) Reshard(ctx context.Context, opts *ReshardOpts) (*ReshardResult, error) {
	if opts == nil {
		opts = &ReshardOpts{}
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 500
	}
	res := &ReshardResult{}
	byCluster := map[string][]*tenancy.Tenant{}
	var after tenancy.ID
	for {
		page, err := p.List(ctx, &ListOpts{After: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("provision: Reshard: %w", err)
		}
		for _, t := range page.Tenants {
			byCluster[t.Cluster] = append(byCluster[t.Cluster], t)
		}
		res.Tenants += len(page.Tenants)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	clusters := make([]string, 0, len(byCluster))
	for c := range byCluster {
		clusters = append(clusters, c)
	}
	sort.Strings(clusters)
	for _, cluster := range clusters {
		if err := p.reshardCluster(ctx, cluster, byCluster[cluster], opts.KeepOthers, batch, res); err != nil {
			return res, fmt.Errorf("provision: Reshard: cluster %q: %w", cluster, err)
		}
	}
	return res, nil
}

func (p *Provisioner) reshardCluster(ctx context.Context, cluster string, tenants []*tenancy.Tenant, keep bool, batch int, res *ReshardResult) error {
	pool, _, err := p.clusterPool(cluster)
	if err != nil {
		return err
	}
	gw := p.cfg.GatewayRole
	// Every membership of a tenant runtime role held by the gateway or a
	// login named like one of its shards.
	rows, err := pool.Query(ctx, `SELECT r.rolname, m.rolname FROM pg_catalog.pg_auth_members a
		JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
		JOIN pg_catalog.pg_roles m ON m.oid = a.member
		WHERE m.rolname = $1 OR (left(m.rolname, length($1) + 2) = $1 || '_s' AND substr(m.rolname, length($1) + 3) ~ '^[0-9]+$')`, gw)
	if err != nil {
		return fmt.Errorf("listing gateway memberships: %w", err)
	}
	have := map[string]map[string]bool{}
	var role, member string
	if _, err := pgx.ForEachRow(rows, []any{&role, &member}, func() error {
		if have[role] == nil {
			have[role] = map[string]bool{}
		}
		have[role][member] = true
		return nil
	}); err != nil {
		return fmt.Errorf("listing gateway memberships: %w", err)
	}
	var stmts []string
	for _, t := range tenants {
		want := ""
		if t.Status == tenancy.StatusActive && !p.cfg.NoGatewayMembership {
			want = p.gatewayFor(t.Key)
			if !have[t.Role][want] {
				stmts = append(stmts, "GRANT "+quote(t.Role)+" TO "+quote(want))
				res.Granted++
			}
		}
		if keep {
			continue
		}
		members := make([]string, 0, len(have[t.Role]))
		for m := range have[t.Role] {
			members = append(members, m)
		}
		sort.Strings(members)
		for _, m := range members {
			if m != want {
				stmts = append(stmts, "REVOKE "+quote(t.Role)+" FROM "+quote(m))
				res.Revoked++
			}
		}
	}
	for len(stmts) > 0 {
		n := min(batch, len(stmts))
		if err := txOn(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, strings.Join(stmts[:n], "; "))
			return err
		}); err != nil {
			return err
		}
		stmts = stmts[n:]
	}
	return nil
}
