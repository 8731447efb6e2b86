package isotest

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// SingleStatementScope is a Scope that can also run single statements the
// way router.DB does (a statement prepared per tenant and kept on the
// connection). The attacks on that statement cache need it; against a Scope
// without it they report not-applicable.
type SingleStatementScope interface {
	Scope
	// Single returns the single-statement handle of tenant id, or nil when
	// the mode has none.
	Single(id tenancy.ID) SingleDB
}

// SingleDB is router.DB as the harness uses it.
type SingleDB interface {
	QueryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error }
}

type routerSingle struct{ db router.DB }

func (s routerSingle) QueryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error } {
	return s.db.QueryRow(ctx, sql, args...)
}

// Single is router.DB in the shared-pool modes.
func (s routerScope) Single(id tenancy.ID) SingleDB {
	if m := s.r.Mode(); m != router.SessionRole && m != router.TxLocal {
		return nil
	}
	return routerSingle{s.r.DB(id)}
}

func init() {
	register(
		&Attack{
			ID: "HYG-014", Class: ClassSessionState, Severity: SeverityCritical,
			Title:       "Execute the victim's cached single statement by name (router.DB's statement cache)",
			Description: "router.DB keeps a prepared statement per tenant and SQL text on each gateway connection, across tenants. The attacker, handed the same backend, looks the victim's statement up in pg_prepared_statements and EXECUTEs it: PostgreSQL must run it with the attacker's role and search_path (its rows or permission denied), never the victim's.",
			Action:      "B (router.DB): SELECT secret, pg_backend_pid() FROM bh_isotest_canary; A on the same backend: SELECT name FROM pg_prepared_statements WHERE statement = <that SQL>; EXECUTE <name>",
			Expect:      expectAll(Blocked),
			run:         cachedStatementAttack,
		},
		&Attack{
			ID: "HYG-015", Class: ClassSessionState, Severity: SeverityLow,
			Title:       "Read the SQL text of the victim's cached single statements (pg_prepared_statements)",
			Description: "The statements router.DB keeps across tenants are listed, with their SQL text (never their parameters), in pg_prepared_statements of the backend that holds them. A literal the victim's application put in SQL text is visible to the next tenant on that backend; parameters are not. Keep tenant data out of SQL text.",
			Action:      "B (router.DB): SELECT secret, pg_backend_pid() FROM bh_isotest_canary WHERE secret <> '<canary>'; A on the same backend: SELECT statement FROM pg_prepared_statements",
			Expect:      expectShared(LeakedMetadata, Blocked),
			Residual:    "router.DB keeps statements across tenants for speed (docs/SECURITY.md); their text, not their parameters, is readable in the session. Config.StatementCacheSize = -1 turns the cache off.",
			run:         cachedTextAttack,
		},
	)
}

// victimSingle runs sql (which must return the secret and the backend PID)
// as B through the scope's single-statement handle and returns the PID.
func victimSingle(ctx context.Context, e *env, sql string) (uint32, observation, bool) {
	ss, ok := e.scope.(SingleStatementScope)
	var db SingleDB
	if ok {
		db = ss.Single(e.b.t.ID)
	}
	if db == nil {
		return 0, observed(NotApplicable, "the scope has no single-statement handle (router.DB) in mode %s", e.mode), false
	}
	var secret string
	var pidB uint32
	if err := db.QueryRow(ctx, sql).Scan(&secret, &pidB); err != nil {
		return 0, failed(fmt.Errorf("victim's single statement: %w", err)), false
	}
	return pidB, observation{}, true
}

// onVictimBackend runs sql as B through the single-statement handle, then
// probe as A on the backend that ran it (retrying until the pool hands A that
// backend) and returns probe's observation.
func onVictimBackend(ctx context.Context, e *env, sql string, probe func(DB) observation) observation {
	for try := 0; try < 10; try++ {
		pidB, obs, ok := victimSingle(ctx, e, sql)
		if !ok {
			return obs
		}
		var got *observation
		err := e.do(ctx, e.a, func(db DB) error {
			if pid(db) == pidB {
				o := probe(db)
				got = &o
			}
			return nil
		})
		if err != nil {
			return failed(err)
		}
		if got != nil {
			return *got
		}
	}
	return notShared(e)
}

// cachedStatementAttack is HYG-014.
func cachedStatementAttack(ctx context.Context, e *env) observation {
	sql := "SELECT secret, pg_backend_pid() FROM " + canaryTable + " /* hyg-014 */"
	return onVictimBackend(ctx, e, sql, func(db DB) observation {
		var name string
		if err := db.QueryRow(ctx, "SELECT name FROM pg_prepared_statements WHERE statement = $1", sql).Scan(&name); err != nil {
			return observed(Blocked, "the victim's statement is not visible on its backend: %s", refused(err))
		}
		out, err := queryAll(ctx, db, "EXECUTE "+quoteIdent(name))
		if err != nil {
			return observed(Blocked, "executing the victim's statement on its backend failed: %s", refused(err))
		}
		if c, hit := sawAny(out, e.b.data()); hit {
			return observed(LeakedData, "the victim's cached statement returned its canary %s to the attacker", c)
		}
		return observed(Blocked, "the victim's cached statement ran with the attacker's role and search_path (%d bytes of the attacker's own rows)", len(out))
	})
}

// cachedTextAttack is HYG-015.
func cachedTextAttack(ctx context.Context, e *env) observation {
	sql := "SELECT secret, pg_backend_pid() FROM " + canaryTable + " WHERE secret <> " + literal(e.b.query)
	return onVictimBackend(ctx, e, sql, func(db DB) observation {
		out, err := queryAll(ctx, db, "SELECT statement FROM pg_prepared_statements")
		if err != nil {
			return observed(Blocked, "pg_prepared_statements is not readable: %s", refused(err))
		}
		if strings.Contains(out, e.b.query) {
			return observed(LeakedMetadata, "the victim's SQL text, with its literal %s, is listed in pg_prepared_statements", e.b.query)
		}
		return observed(Blocked, "the victim's SQL text is not in the session's prepared statements")
	})
}
