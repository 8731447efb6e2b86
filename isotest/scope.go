package isotest

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DB is a tenant-scoped handle as the harness uses it: *router.Conn and
// pgx.Tx both satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// Conn is the connection underneath, for protocol-level attacks.
	Conn() *pgx.Conn
}

// Scope is what the harness attacks: something that hands out a tenant's unit
// of work. RouterScope adapts a *router.Router; an application that wraps the
// router (or a deliberately weak test fixture) implements Scope itself.
type Scope interface {
	// Mode names the isolation mode, as keyed in Attack.Expect.
	Mode() string
	// Do runs fn on a handle scoped to tenant id and releases it when fn
	// returns. A transactional scope (mode TxLocal) commits when fn returns
	// nil and rolls back otherwise; a session scope must close, not reuse, a
	// connection released inside a transaction. The harness relies on both to
	// undo its write attempts: it returns an error from fn (transactional) or
	// wraps fn in BEGIN ... ROLLBACK (session) after each attack.
	Do(ctx context.Context, id tenancy.ID, fn func(DB) error) error
}

// RouterScope returns the Scope of r: in TxLocal mode each unit of work is
// one transaction (Router.Begin); in the other modes it is one checkout
// (Router.Acquire).
func RouterScope(r *router.Router) Scope { return routerScope{r} }

type routerScope struct{ r *router.Router }

func (s routerScope) Mode() string { return s.r.Mode().String() }

func (s routerScope) Do(ctx context.Context, id tenancy.ID, fn func(DB) error) error {
	if s.r.Mode() == router.TxLocal {
		tx, err := s.r.Begin(ctx, id)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	c, err := s.r.Acquire(ctx, id)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}
