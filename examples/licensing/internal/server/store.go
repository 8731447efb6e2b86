package server

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/examples/licensing/licensingdb"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Store hands the licensing handlers a handle scoped to one tenant. The
// production Store is the bulkhead router; CeilingStore serves the same
// handlers without tenant routing, as the performance baseline.
type Store interface {
	// Read runs fn on a handle scoped to tenant id.
	Read(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error
	// ReadOne is Read for fn that runs exactly one statement: the router
	// serves it through router.DB, its fast path.
	ReadOne(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error
	// Write runs fn in a transaction scoped to tenant id and commits it if fn
	// returns nil.
	Write(ctx context.Context, id tenancy.ID, fn func(pgx.Tx) error) error
}

// RouterStore is the Store on a bulkhead router: in SessionRole mode reads
// take a scoped connection (the switch is pipelined with the first query),
// in TxLocal mode everything is a transaction.
type RouterStore struct{ R *router.Router }

// Read implements Store.
func (s RouterStore) Read(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error {
	if s.R.Mode() == router.TxLocal {
		return s.R.InTx(ctx, id, func(tx pgx.Tx) error { return fn(tx) })
	}
	c, err := s.R.Acquire(ctx, id)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}

// ReadOne implements Store: router.DB, which pipelines the switch with the
// statement and keeps it prepared for the tenant.
func (s RouterStore) ReadOne(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error {
	if m := s.R.Mode(); m != router.SessionRole && m != router.TxLocal {
		return s.Read(ctx, id, fn)
	}
	return fn(s.R.DB(id))
}

// Write implements Store.
func (s RouterStore) Write(ctx context.Context, id tenancy.ID, fn func(pgx.Tx) error) error {
	return s.R.InTx(ctx, id, fn)
}

// CeilingStore serves each tenant from its own plain pgxpool whose
// search_path is fixed to the tenant's schema at connect time: no role, no
// switch, no reset, no catalog lookup. It is the "no tenant routing" ceiling
// for the load run, and it is NOT isolation: its login must be able to read
// every schema. Never use it to serve tenants.
type CeilingStore struct{ Pools map[tenancy.ID]*pgxpool.Pool }

func (s CeilingStore) pool(id tenancy.ID) (*pgxpool.Pool, error) {
	p := s.Pools[id]
	if p == nil {
		return nil, &tenancy.NotFoundError{ID: id}
	}
	return p, nil
}

// Read implements Store.
func (s CeilingStore) Read(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error {
	p, err := s.pool(id)
	if err != nil {
		return err
	}
	return fn(p)
}

// ReadOne implements Store.
func (s CeilingStore) ReadOne(ctx context.Context, id tenancy.ID, fn func(licensingdb.DBTX) error) error {
	return s.Read(ctx, id, fn)
}

// Write implements Store.
func (s CeilingStore) Write(ctx context.Context, id tenancy.ID, fn func(pgx.Tx) error) error {
	p, err := s.pool(id)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p, fn)
}

// NewCeilingStore opens one pool per tenant on dsn with search_path set to
// the tenant's schema, conns connections each.
func NewCeilingStore(ctx context.Context, dsn string, tenants []*tenancy.Tenant, conns int32) (CeilingStore, error) {
	s := CeilingStore{Pools: map[tenancy.ID]*pgxpool.Pool{}}
	for _, t := range tenants {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return s, err
		}
		cfg.MaxConns = conns
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{t.Schema}.Sanitize()
		// Same statement handling as the router's gateway pool, so the
		// comparison measures routing and nothing else.
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			s.Close()
			return s, fmt.Errorf("ceiling pool for %q: %w", t.ID, err)
		}
		s.Pools[t.ID] = p
	}
	return s, nil
}

// Close closes the pools.
func (s CeilingStore) Close() {
	for _, p := range s.Pools {
		p.Close()
	}
}
