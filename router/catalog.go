package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Catalog looks tenants up. It returns an error matching tenancy.ErrNotFound
// for an unknown tenant. *provision.Provisioner satisfies it.
type Catalog interface {
	Tenant(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error)
}

// routeCatalog calls <control>.route_tenant as the gateway, which can read no
// table: the function is SECURITY DEFINER with a pinned search_path.
type routeCatalog struct {
	pool *pgxpool.Pool
	sql  string
}

func (c *routeCatalog) Tenant(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	var t tenancy.Tenant
	var key, status string
	var limits []byte
	var updated time.Time
	err := c.pool.QueryRow(ctx, c.sql, string(id)).Scan(&key, &status, &t.Schema, &t.Role, &t.Cluster, &limits, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &tenancy.NotFoundError{ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("looking up tenant %q: %w", id, err)
	}
	t.ID, t.Key, t.Status, t.UpdatedAt = id, tenancy.Key(key), tenancy.Status(status), updated
	if err := json.Unmarshal(limits, &t.Limits); err != nil {
		return nil, fmt.Errorf("decoding limits of tenant %q: %w", id, err)
	}
	return &t, nil
}

// statusCache keeps tenant records for at most ttl, including "not found", so
// that garbage IDs do not reach the catalog on every request.
type statusCache struct {
	mu  sync.Mutex
	m   map[tenancy.ID]cacheEntry
	ttl time.Duration
	max int
}

type cacheEntry struct {
	t   *tenancy.Tenant
	err error
	at  time.Time
}

func newStatusCache(ttl time.Duration, size int) *statusCache {
	return &statusCache{m: map[tenancy.ID]cacheEntry{}, ttl: ttl, max: size}
}

func (c *statusCache) get(id tenancy.ID, now time.Time) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || now.Sub(e.at) >= c.ttl {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *statusCache) put(id tenancy.ID, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Evict about a tenth, oldest-agnostic: map order is random, and every
		// entry expires within ttl anyway.
		n := c.max/10 + 1
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[id] = e
}

func (c *statusCache) forget(id tenancy.ID) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

func (c *statusCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
