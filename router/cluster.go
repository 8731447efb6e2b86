package router

// Several clusters.
//
// The DSN given to New leads to the primary cluster, named Config.Cluster,
// which holds the catalog (route_tenant). Config.Clusters names the gateway
// DSNs of the other clusters. Each tenant's catalog record says which
// cluster holds it; checkouts go to that cluster's pool (shared-pool modes)
// or to a tenant pool logging in there (TenantLogin, whose MaxConns budget
// counts the connections of all clusters together).

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// ErrUnknownCluster is matched by the error a checkout returns for a tenant
// whose catalog record names a cluster the router has no DSN for.
var ErrUnknownCluster = errors.New("router: tenant on an unknown cluster")

// clusterConfigs parses the DSNs of Config.Clusters, applying ConfigurePool.
func clusterConfigs(cfg *Config) (map[string]*pgxpool.Config, error) {
	if cfg == nil || len(cfg.Clusters) == 0 {
		return nil, nil
	}
	out := map[string]*pgxpool.Config{}
	for name, dsn := range cfg.Clusters {
		pc, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("router: parsing the DSN of cluster %q: %w", name, err)
		}
		if cfg.ConfigurePool != nil {
			cfg.ConfigurePool(pc)
		}
		out[name] = pc
	}
	return out, nil
}

// openClusters opens the shared pools of the other clusters, set up like
// the primary's (pc, after the router installed its hooks). It opens no
// connection.
func (r *Router) openClusters(ctx context.Context, pc *pgxpool.Config, parsed map[string]*pgxpool.Config) error {
	if len(parsed) == 0 || r.cfg.Mode == TenantLogin {
		return nil
	}
	r.clusters = map[string]*pgxpool.Pool{}
	for name, cc := range parsed {
		cc = cc.Copy()
		cc.ConnConfig.DefaultQueryExecMode = pc.ConnConfig.DefaultQueryExecMode
		cc.ConnConfig.StatementCacheCapacity = pc.ConnConfig.StatementCacheCapacity
		cc.ConnConfig.DescriptionCacheCapacity = pc.ConnConfig.DescriptionCacheCapacity
		cc.ConnConfig.Tracer = pc.ConnConfig.Tracer
		cc.AfterConnect, cc.BeforeClose = pc.AfterConnect, pc.BeforeClose
		pool, err := pgxpool.NewWithConfig(ctx, cc)
		if err != nil {
			r.closeClusters()
			return fmt.Errorf("router: creating the pool of cluster %q: %w", name, err)
		}
		r.clusters[name] = pool
	}
	return nil
}

func (r *Router) closeClusters() {
	for _, p := range r.clusters {
		p.Close()
	}
}

// poolFor returns the shared pool of t's cluster.
func (r *Router) poolFor(t *tenancy.Tenant) (*pgxpool.Pool, error) {
	if t.Cluster == r.cfg.Cluster || t.Cluster == "" {
		return r.pool, nil
	}
	if p, ok := r.clusters[t.Cluster]; ok {
		return p, nil
	}
	return nil, unknownCluster(t, r.cfg)
}

func unknownCluster(t *tenancy.Tenant, cfg *Config) error {
	names := []string{cfg.Cluster}
	for n := range cfg.Clusters {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	return fmt.Errorf("%w: tenant %q is on cluster %q; this router knows %v (Config.Cluster, Config.Clusters)", ErrUnknownCluster, t.ID, t.Cluster, names)
}

// ClusterPools returns the shared pools of the other clusters by name, for
// statistics (nil in TenantLogin mode or with one cluster).
func (r *Router) ClusterPools() map[string]*pgxpool.Pool {
	out := make(map[string]*pgxpool.Pool, len(r.clusters))
	for n, p := range r.clusters {
		out[n] = p
	}
	return out
}
