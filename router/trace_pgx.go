package router

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgxTracer forwards pgx's query events to the router's QueryTracer with the
// tenant the connection serves.
type pgxTracer struct{ r *Router }

type queryStartKey struct{}

type queryStart struct {
	at  time.Time
	sql string
}

func (t *pgxTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), sql: d.SQL})
}

func (t *pgxTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryEndData) {
	qs, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	t.r.mu.Lock()
	st := t.r.conns[conn]
	t.r.mu.Unlock()
	if st == nil || st.tenant == "" {
		return
	}
	t.r.queryTracer.TraceQuery(ctx, QueryData{Tenant: st.tenant, SQL: qs.sql, Duration: time.Since(qs.at), Err: d.Err})
}
