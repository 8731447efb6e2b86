package provision

// Several clusters.
//
// The catalog (control schema: tenants, audit log, route_tenant) lives on
// one cluster only, the primary: the one whose admin pool is given to New,
// named Config.Cluster. Config.Clusters adds the admin pools of other
// clusters. A tenant's role, schema, tables and login role live on the
// cluster recorded in its catalog row; Create picks it with
// Config.Placement. Work on another cluster runs in a transaction of its own
// that commits just before the catalog's, so a failure before that commit
// leaves nothing anywhere; a failure after it (the catalog commit itself)
// is compensated by dropping what was created on the other cluster.
// Lifecycle changes commit on the tenant's cluster first: a revocation that
// committed there with a catalog update that failed leaves the tenant
// unroutable, never the other way round.

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Placement chooses the cluster of a new tenant.
type Placement interface {
	// Place returns the name of the cluster for tenant id. counts has every
	// configured cluster, with the number of tenants (any status) on it.
	Place(ctx context.Context, id tenancy.ID, counts map[string]int64) (string, error)
}

// LeastTenants places a new tenant on the cluster with the fewest tenants,
// the first by name on a tie. It is the default Placement.
type LeastTenants struct{}

// Place implements Placement.
func (LeastTenants) Place(_ context.Context, _ tenancy.ID, counts map[string]int64) (string, error) {
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	best := ""
	for _, n := range names {
		if best == "" || counts[n] < counts[best] {
			best = n
		}
	}
	if best == "" {
		return "", fmt.Errorf("provision: no cluster to place a tenant on")
	}
	return best, nil
}

// ClusterNames returns the names of the configured clusters, the primary
// (Config.Cluster, which holds the catalog) first.
func (p *Provisioner) ClusterNames() []string {
	out := []string{p.cfg.Cluster}
	var others []string
	for n := range p.cfg.Clusters {
		others = append(others, n)
	}
	sort.Strings(others)
	return append(out, others...)
}

// ClusterPool returns the admin pool of cluster name (Config.Cluster or a
// key of Config.Clusters), for tools that work on tenants where they live,
// such as a migration fan-out (a tenant's cluster is Tenant.Cluster).
func (p *Provisioner) ClusterPool(name string) (*pgxpool.Pool, error) {
	pool, _, err := p.clusterPool(name)
	return pool, err
}

// clusterPool returns the admin pool of cluster name, and whether it is the
// primary (the catalog's own pool).
func (p *Provisioner) clusterPool(name string) (*pgxpool.Pool, bool, error) {
	if name == p.cfg.Cluster {
		return p.pool, true, nil
	}
	if pool, ok := p.cfg.Clusters[name]; ok {
		return pool, false, nil
	}
	return nil, false, fmt.Errorf("provision: cluster %q is not configured (Config.Cluster %q, Config.Clusters %v)", name, p.cfg.Cluster, p.ClusterNames()[1:])
}

// place picks the cluster of new tenant id.
func (p *Provisioner) place(ctx context.Context, q *dbsqlc.Queries, id tenancy.ID) (string, error) {
	if len(p.cfg.Clusters) == 0 {
		return p.cfg.Cluster, nil
	}
	counts := map[string]int64{}
	for _, n := range p.ClusterNames() {
		counts[n] = 0
	}
	rows, err := q.CountTenantsByCluster(ctx)
	if err != nil {
		return "", fmt.Errorf("counting tenants per cluster: %w", err)
	}
	for _, r := range rows {
		if _, ok := counts[r.Cluster]; ok {
			counts[r.Cluster] = r.N
		}
	}
	name, err := p.cfg.Placement.Place(ctx, id, counts)
	if err != nil {
		return "", fmt.Errorf("placing: %w", err)
	}
	if _, ok := counts[name]; !ok {
		return "", fmt.Errorf("placing: Placement chose cluster %q, which is not configured", name)
	}
	return name, nil
}

// onCluster runs fn in a transaction on cluster name: the primary's tx
// itself, or a transaction of its own on another cluster, committed when fn
// succeeds. committed reports whether such a remote transaction committed.
func (p *Provisioner) onCluster(ctx context.Context, tx pgx.Tx, name string, fn func(pgx.Tx) error) (committed bool, err error) {
	pool, primary, err := p.clusterPool(name)
	if err != nil {
		return false, err
	}
	if primary {
		return false, fn(tx)
	}
	rtx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("beginning a transaction on cluster %q: %w", name, err)
	}
	defer rtx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(rtx); err != nil {
		return false, fmt.Errorf("on cluster %q: %w", name, err)
	}
	if err := rtx.Commit(ctx); err != nil {
		return false, fmt.Errorf("committing on cluster %q: %w", name, err)
	}
	return true, nil
}

// dropTenantObjects removes a tenant's login role, schema and runtime role
// from cluster name (compensation after a failed Create).
func (p *Provisioner) dropTenantObjects(ctx context.Context, name string, key tenancy.Key, schema, role string) error {
	pool, _, err := p.clusterPool(name)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if err := p.dropLoginTx(ctx, tx, key); err != nil {
		return err
	}
	stmts := "SET LOCAL ROLE " + quote(p.cfg.Naming.OwnerRole()) + "; DROP SCHEMA IF EXISTS " + quote(schema) + " CASCADE; RESET ROLE"
	if _, err := tx.Exec(ctx, stmts); err != nil {
		return err
	}
	if err := dropRole(ctx, tx, role); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
