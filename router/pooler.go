package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrTransactionPooler is matched by the error a SessionRole router returns
// when it finds itself behind a connection pooler in transaction or
// statement mode (PgBouncer pool_mode=transaction, RDS Proxy, ...). The
// error itself is a *PoolerError.
var ErrTransactionPooler = errors.New("router: behind a transaction-mode connection pooler")

// PoolerError says that the router runs behind a transaction- or
// statement-mode pooler, where a client connection is not one server
// session, and that its mode cannot work there. It matches
// ErrTransactionPooler.
type PoolerError struct {
	Mode Mode
	// Evidence says what the detection observed.
	Evidence string
}

func (e *PoolerError) Error() string {
	return fmt.Sprintf("router: %s mode refuses to run behind a transaction- or statement-mode connection pooler (%s): "+
		"the role and search_path it sets would stay on a server connection that other clients get next, "+
		"and its next statement may run on a server connection set up for someone else; "+
		"use router.TxLocal, which scopes every transaction with SET LOCAL, or connect to PostgreSQL directly", e.Mode, e.Evidence)
}

// Is reports whether target is ErrTransactionPooler.
func (e *PoolerError) Is(target error) bool { return target == ErrTransactionPooler }

// poolerCheck caches the outcome of the pooler detection.
type poolerCheck struct {
	done atomic.Bool
	mu   sync.Mutex
	err  error
}

// Check verifies, with connections of its own, that the router can work
// where its DSN leads. In SessionRole mode it detects a transaction- or
// statement-mode connection pooler and returns a *PoolerError
// (errors.Is(err, ErrTransactionPooler)) telling to use TxLocal; TxLocal and
// TenantLogin work behind such poolers and get nil. Call it at startup to
// fail fast: a SessionRole router runs the same check on its first checkout
// anyway, and refuses every checkout once it has found a pooler. The outcome
// is cached; a check that could not run (the server is down) is retried by
// the next call.
func (r *Router) Check(ctx context.Context) error {
	if r.cfg.Mode != SessionRole {
		return nil
	}
	return r.checkPooler(ctx)
}

// txPooler reports whether a TxLocal router's DSN leads to a transaction
// pooler (the same detection, run once), in which case DB sends unnamed
// statements only.
func (r *Router) txPooler(ctx context.Context) (bool, error) {
	err := r.checkPooler(ctx)
	if errors.Is(err, ErrTransactionPooler) {
		return true, nil
	}
	return false, err
}

// checkPooler runs the detection once per router. The fast path, taken on
// every checkout, is one atomic load.
func (r *Router) checkPooler(ctx context.Context) error {
	if r.pooler.done.Load() {
		return r.pooler.err
	}
	r.pooler.mu.Lock()
	defer r.pooler.mu.Unlock()
	if r.pooler.done.Load() {
		return r.pooler.err
	}
	evidence, err := detectPooler(ctx, r.pool.Config().ConnConfig.Config.Copy())
	if err != nil {
		return fmt.Errorf("router: checking whether the DSN leads to a connection pooler: %w", connLost(err))
	}
	if evidence != "" {
		r.pooler.err = &PoolerError{Mode: r.cfg.Mode, Evidence: evidence}
	}
	r.pooler.done.Store(true)
	return r.pooler.err
}

// detectPooler tells whether client connections made with cfg are bound to
// one server backend each, as they are when connected to PostgreSQL
// directly. It opens two client connections, A and B:
//
//  1. A asks for its backend's pid (a), outside any transaction, so a
//     pooler in transaction mode returns that server connection to its pool.
//  2. B opens a transaction and asks for its pid (b); the transaction pins
//     the server connection B got. b == a is impossible without a pooler:
//     two sessions never share a backend.
//  3. A asks again (a2). a2 != a is impossible without a pooler: a session
//     keeps its backend.
//
// PgBouncer hands out its most recently used server connection first, so
// step 2 gets a's connection at once; with round-robin server selection the
// rounds are repeated, each with one more B holding a transaction, so that
// a's server connection ends up pinned by a B. A statement-mode pooler
// refuses B's transaction, which is evidence too. The returned evidence is
// empty when no pooler was seen.
func detectPooler(ctx context.Context, cfg *pgconn.Config) (evidence string, err error) {
	const rounds = 3
	pid := func(c *pgconn.PgConn, sql string) (string, error) {
		res, err := c.Exec(ctx, sql).ReadAll()
		if err != nil {
			return "", err
		}
		last := res[len(res)-1]
		if last.Err != nil {
			return "", last.Err
		}
		if len(last.Rows) != 1 || len(last.Rows[0]) != 1 {
			return "", fmt.Errorf("unexpected result shape for %q", sql)
		}
		return string(last.Rows[0][0]), nil
	}
	a, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer a.Close(context.WithoutCancel(ctx))
	var bs []*pgconn.PgConn
	defer func() {
		for _, b := range bs {
			b.Close(context.WithoutCancel(ctx))
		}
	}()
	aPID, err := pid(a, "SELECT pg_backend_pid()")
	if err != nil {
		return "", err
	}
	for range rounds {
		b, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return "", err
		}
		bs = append(bs, b)
		bPID, err := pid(b, "BEGIN; SELECT pg_backend_pid()")
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "pool") {
				return fmt.Sprintf("the server refused a transaction block: %q", pgErr.Message), nil
			}
			return "", err
		}
		if bPID == aPID {
			return fmt.Sprintf("two client connections were served by the same server backend, pid %s", aPID), nil
		}
		a2, err := pid(a, "SELECT pg_backend_pid()")
		if err != nil {
			return "", err
		}
		if a2 != aPID {
			return fmt.Sprintf("one client connection was served by server backends with pids %s and %s", aPID, a2), nil
		}
	}
	return "", nil
}
