package routebench

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// StatementMemory measures what DB's statement cache costs a backend: on a
// fresh superuser backend it touches one table of each of the first n
// tenants (so the catalog caches are warm), then prepares, per tenant, the
// point select the routing benchmark runs, under that tenant's search_path,
// and executes it six times (PostgreSQL switches to a generic plan after
// five). It returns the backend's total memory context size after the
// touching and after the statements (pg_backend_memory_contexts).
func (e *Env) StatementMemory(ctx context.Context, n int) (touched, prepared int64, err error) {
	conn, err := pgx.Connect(ctx, e.Dep.DB.SuperDSN)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	const q = "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts"
	ts := e.Tenants[:min(n, len(e.Tenants))]
	var note string
	for _, t := range ts {
		if err := conn.QueryRow(ctx, "SELECT note FROM "+pgx.Identifier{t.Schema, "items"}.Sanitize()+" WHERE id = 1", pgx.QueryExecModeExec).Scan(&note); err != nil {
			return 0, 0, err
		}
	}
	if err := conn.QueryRow(ctx, q, pgx.QueryExecModeExec).Scan(&touched); err != nil {
		return 0, 0, err
	}
	for i, t := range ts {
		if _, err := conn.Exec(ctx, "SET search_path = "+pgx.Identifier{t.Schema}.Sanitize(), pgx.QueryExecModeSimpleProtocol); err != nil {
			return 0, 0, err
		}
		name := fmt.Sprintf("bench_s%d", i)
		if _, err := conn.PgConn().Prepare(ctx, name, "SELECT note FROM items WHERE id = $1", nil); err != nil {
			return 0, 0, err
		}
		for j := range 6 {
			if _, err := conn.PgConn().ExecPrepared(ctx, name, [][]byte{[]byte(fmt.Sprint(j + 1))}, nil, nil).Close(); err != nil {
				return 0, 0, err
			}
		}
	}
	if _, err := conn.Exec(ctx, "RESET search_path", pgx.QueryExecModeSimpleProtocol); err != nil {
		return 0, 0, err
	}
	err = conn.QueryRow(ctx, q, pgx.QueryExecModeExec).Scan(&prepared)
	return touched, prepared, err
}
