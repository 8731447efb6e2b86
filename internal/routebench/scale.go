package routebench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// FirstQuery measures, on samples gateway connections, the first switch and
// point select on a fresh backend (connection time excluded): on PostgreSQL
// 15 the first SET ROLE computes the gateway's role memberships, which grows
// with the number of tenants.
func (e *Env) FirstQuery(ctx context.Context, samples int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, samples)
	for range samples {
		conn, err := pgx.Connect(ctx, e.Dep.DB.GatewayDSN)
		if err != nil {
			return nil, err
		}
		d, err := e.switchAndSelect(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return SortDurations(out), nil
}

// AfterInvalidation measures, on one warm gateway connection, the first
// switch and point select after each of samples provision.Create calls: any
// role membership change invalidates every backend's membership cache.
// It adds samples tenants to the deployment (not to e.Tenants).
func (e *Env) AfterInvalidation(ctx context.Context, samples int) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, e.Dep.DB.GatewayDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := e.switchAndSelect(ctx, conn); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, samples)
	for range samples {
		if _, err := e.switchAndSelect(ctx, conn); err != nil { // warm
			return nil, err
		}
		id := tenancy.ID(fmt.Sprintf("inval-%d-%d", len(e.Tenants), rand.IntN(1<<30)))
		if _, err := e.Dep.Provisioner.Create(ctx, id, nil); err != nil {
			return nil, err
		}
		d, err := e.switchAndSelect(ctx, conn)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return SortDurations(out), nil
}

func (e *Env) switchAndSelect(ctx context.Context, conn *pgx.Conn) (time.Duration, error) {
	t := e.Tenants[rand.IntN(len(e.Tenants))]
	start := time.Now()
	if _, err := conn.Exec(ctx, "RESET ROLE; SET ROLE "+pgx.Identifier{t.Role}.Sanitize()+"; SET search_path = "+pgx.Identifier{t.Schema}.Sanitize()); err != nil {
		return 0, err
	}
	var note string
	if err := conn.QueryRow(ctx, pointSQL, pgx.QueryExecModeExec, int64(1)).Scan(&note); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// BackendMemory touches one table of each of the first n tenants on a fresh
// superuser backend and returns the backend's total memory context size
// before and after (pg_backend_memory_contexts, PostgreSQL 14+): what a
// pooled backend cycling through n tenants caches.
func (e *Env) BackendMemory(ctx context.Context, n int) (before, after int64, err error) {
	conn, err := pgx.Connect(ctx, e.Dep.DB.SuperDSN)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	const q = "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts"
	if err := conn.QueryRow(ctx, q).Scan(&before); err != nil {
		return 0, 0, err
	}
	var note string
	for _, t := range e.Tenants[:min(n, len(e.Tenants))] {
		if err := conn.QueryRow(ctx, "SELECT note FROM "+pgx.Identifier{t.Schema, "items"}.Sanitize()+" WHERE id = 1", pgx.QueryExecModeExec).Scan(&note); err != nil {
			return 0, 0, err
		}
	}
	err = conn.QueryRow(ctx, q).Scan(&after)
	return before, after, err
}
