package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// This file is DB's hot path when the statement cache is on (the default).
// One statement for one tenant is one round trip, and the server parses and
// plans nothing on the common path:
//
//	(reset)  RESET ALL; RESET ROLE          named, when the session changes tenant
//	         or DISCARD ALL, Sync          when its state is unknown (full reset)
//	(switch) EXECUTE bulkhead_switch(...)   set_config role, search_path, statement_timeout,
//	                                        pg_advisory_unlock_all, verification
//	(stmt)   EXECUTE bulkhead_s<n>(args)    the tenant's own prepared statement
//	         Sync
//
// The switch is skipped when the session already serves the tenant
// (SessionRole). TxLocal runs the same pipeline as one implicit transaction
// (everything up to Sync): the switch uses set_config(..., true), so role,
// search_path and timeout end with the transaction, with no BEGIN or COMMIT.
//
// Why the light reset is enough between tenants on a clean session (see
// connState.clean): a single statement whose command tag is SELECT (with a
// row description), INSERT, UPDATE, DELETE or MERGE cannot declare a cursor,
// LISTEN, PREPARE, create a temporary table (CREATE TABLE AS also says
// SELECT, but has no row description) or change the session authorization;
// what it can leave behind through the built-in functions it calls is GUC
// values (set_config(..., false)), the role (set_config('role', ...)) and
// session advisory locks. (A function of the tenant's schema that runs
// dynamic SQL could do more; tenants that can drive such a function control
// SQL, which the shared-pool modes do not claim to contain.) RESET ALL, RESET ROLE and pg_advisory_unlock_all() remove
// those; the switch then refuses to go on unless the session is back at the
// gateway. Sequence state (currval, lastval) survives but is checked against
// the current role's privileges on every call. Any other command tag, any
// error, and any Acquire or transaction make the next tenant change a full
// DISCARD ALL.

// switchStmt is the body of bulkhead_switch and bulkhead_switch_local: $1
// role, $2 search_path, $3 statement_timeout, $4 the gateway. The WHERE
// clause has no column references, so PostgreSQL evaluates it once before
// the target list and raises unless the session is at the gateway (the reset
// ran, and nothing switched the role behind the router's back).
func switchStmt(local bool) string {
	l := strconv.FormatBool(local)
	return "SELECT set_config('role', $1, " + l + "), set_config('search_path', $2, " + l + "), " +
		"set_config('statement_timeout', $3, " + l + "), session_user::text, pg_advisory_unlock_all() " +
		"WHERE CASE WHEN current_user = session_user AND session_user = $4 THEN true " +
		"ELSE ('bulkhead: session check failed for ' || current_user || '/' || session_user)::int::boolean END"
}

// lightResetSQL is the body of bulkhead_reset_all; tests replace it to make
// the reset fail.
var lightResetSQL = "RESET ALL"

var (
	switchSessionSQL = switchStmt(false)
	switchLocalSQL   = switchStmt(true)
)

// errRetryPlan asks oneShot to retry once: a cached statement's result type
// changed (a migration altered its table), PostgreSQL refused it before
// executing it, and the session is now marked for a full reset that drops
// every cached statement.
var errRetryPlan = errors.New("router: retry with a freshly prepared statement")

// trusted reports whether a statement that succeeded with tag and fields
// leaves a session the light reset can clean (see above).
func trusted(tag pgconn.CommandTag, fields []pgconn.FieldDescription) bool {
	if tag.Select() {
		return len(fields) > 0
	}
	return tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE")
}

// fastPipeline sends sql for c.tenant with whatever reset and switch the
// session needs, in one round trip, using the statement cache.
func (c *Conn) fastPipeline(ctx context.Context, sql string, args []any, local bool) (*oneRows, error) {
	t, st, r := c.tenant, c.st, c.r
	conn := c.pc.Conn()
	sc := st.stmts
	if len(args) > 0 {
		if qr, ok := args[0].(pgx.QueryRewriter); ok {
			var err error
			if sql, args, err = qr.RewriteQuery(ctx, conn, sql, args[1:]); err != nil {
				c.Release()
				return nil, fmt.Errorf("rewrite query failed: %w", err)
			}
		}
	}
	changing := st.key != t.Key
	full := st.dirty || (changing && st.key != "" && !st.clean)
	if full {
		// The full reset deallocates every statement before anything below
		// runs (if it fails, the connection is destroyed).
		sc.clear()
	}
	sd := sc.get(t.Key, sql)
	var eqb pgx.ExtendedQueryBuilder
	if err := eqb.Build(conn.TypeMap(), sd, args); err != nil {
		c.Release()
		return nil, err
	}
	var light, doSwitch bool
	if local {
		light = !full && changing && st.key != ""
		doSwitch = true
	} else {
		// A SessionRole session is at the gateway only when fresh or just
		// fully reset; otherwise it must be brought back there first.
		doSwitch = full || changing || !st.version.Equal(t.UpdatedAt)
		light = doSwitch && !full && st.key != ""
	}
	switched := doSwitch && (!local || changing)
	// Unknown until the statement succeeds: if anything below fails, the
	// next checkout resets the session whatever tenant it is for.
	st.key, st.tenant, st.dirty = "", "", true

	p := conn.PgConn().StartPipeline(ctx)
	// before are the handlers of the results that come before the switch's.
	var before []func(any) error
	drain := func(res any) error {
		if rr, ok := res.(*pgconn.ResultReader); ok {
			_, err := rr.Close()
			return err
		}
		return nil
	}
	// own sends the router's statement name (body q) with params, preparing
	// it first when the session does not have it yet.
	own := func(name, q string, params [][]byte) {
		if !sc.own[name] {
			p.SendPrepare(name, q, nil)
			before = append(before, func(any) error { sc.own[name] = true; return nil })
		}
		p.SendQueryPrepared(name, params, nil, nil)
	}
	if full && !local {
		p.SendQueryParams(discardSQL, nil, nil, nil, nil)
		p.SendPipelineSync()
		before = append(before, func(res any) error {
			if err := drain(res); err != nil {
				return err
			}
			st.clean = true
			return nil
		}, drain)
	}
	if full && local {
		// COMMIT ends the implicit transaction, so that what only takes
		// effect at commit (UNLISTEN) has before the tenant's statement.
		for _, s := range append(resetStmts[:len(resetStmts):len(resetStmts)], "COMMIT") {
			p.SendQueryParams(s, nil, nil, nil, nil)
			before = append(before, func(res any) error {
				if err := drain(res); err != nil {
					return err
				}
				if s == "COMMIT" {
					st.clean = true
				}
				return nil
			})
		}
	}
	if light {
		own(stmtResetAll, lightResetSQL, nil)
		before = append(before, drain)
		own(stmtResetRole, "RESET ROLE", nil)
		before = append(before, drain)
	}
	if doSwitch {
		timeout := strconv.FormatInt(r.timeoutFor(t).Milliseconds(), 10)
		path := pathIdent(t.Schema) + ", pg_temp"
		name, body := stmtSwitch, switchSessionSQL
		if local {
			name, body = stmtSwitchTx, switchLocalSQL
		}
		own(name, body, [][]byte{[]byte(t.Role), []byte(path), []byte(timeout), []byte(st.gateway)})
	}
	// after are the handlers of the results between the switch's and the
	// statement's: a failure there is the statement's, not the switch's.
	var after []func(any) error
	if sd != nil {
		p.SendQueryStatement(sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	} else {
		if v := sc.victim(); v != "" {
			p.SendDeallocate(v)
			after = append(after, func(any) error { sc.closed(v); return nil })
		}
		name := sc.name()
		p.SendPrepare(name, sql, nil)
		after = append(after, func(res any) error {
			d, ok := res.(*pgconn.StatementDescription)
			if !ok {
				return fmt.Errorf("router: unexpected pipeline result %T", res)
			}
			d.Name = name
			sc.add(t.Key, sql, d)
			return nil
		})
		p.SendQueryPrepared(name, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	}
	p.SendPipelineSync()

	fail := func(err error) (*oneRows, error) { return c.pipelineFailed(ctx, p, err, true, switched) }
	if err := p.Flush(); err != nil {
		return fail(err)
	}
	for _, h := range before {
		res, err := p.GetResults()
		if err == nil {
			err = h(res)
		}
		if err != nil {
			return fail(err)
		}
	}
	if doSwitch {
		if err := verifySwitch(p, t.Role, st.gateway, 5, 3); err != nil {
			return fail(err)
		}
	}
	r.traceAcquire(ctx, t.ID, c.start, switched, nil)
	o := &oneRows{c: c, p: p, local: local, fast: true, sql: sql, at: time.Now()}
	var err error
	for _, h := range after {
		var res any
		if res, err = p.GetResults(); err == nil {
			err = h(res)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		var res any
		if res, err = p.GetResults(); err == nil {
			if rr, ok := res.(*pgconn.ResultReader); ok {
				o.Rows = pgx.RowsFromResultReader(conn.TypeMap(), rr)
				return o, nil
			}
			err = fmt.Errorf("router: unexpected pipeline result %T", res)
		}
	}
	o.Rows = errRows{err}
	var pgErr *pgconn.PgError
	if sd != nil && errors.As(err, &pgErr) && pgErr.Code == pgerrcode.FeatureNotSupported &&
		strings.Contains(pgErr.Message, "cached plan must not change result type") {
		// Refused before execution: nothing ran. The session stays dirty,
		// so the retry's checkout fully resets it, dropping the statement.
		o.Close()
		return nil, errRetryPlan
	}
	return o, nil
}
