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
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DB runs single statements for one tenant, each on a connection checked out
// for that statement alone: the role switch (SessionRole) or the transaction
// with its SET LOCAL settings (TxLocal) travels in the same round trip as the
// statement. It satisfies the DBTX interface sqlc generates, so
// licensingdb.New(r.DB(id)) works, and it is the cheapest way to run one
// statement for a tenant. Use Acquire or InTx for several statements that
// must share a session or a transaction.
//
// Statements run through the extended protocol: one SQL statement per call,
// even for Exec without arguments. A switch or verification failure returns
// an error and no rows; the statement is then not executed.
type DB struct {
	r  *Router
	id tenancy.ID
}

// DB returns the single-statement handle of tenant id. It does no I/O; the
// tenant is looked up and checked on every statement.
func (r *Router) DB(id tenancy.ID) DB { return DB{r: r, id: id} }

// Tenant returns the tenant ID d serves.
func (d DB) Tenant() tenancy.ID { return d.id }

// Exec runs sql for the tenant and returns its command tag.
func (d DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	rows, err := d.r.oneShot(ctx, d.id, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	rows.Close()
	return rows.CommandTag(), rows.Err()
}

// Query runs sql for the tenant. The connection returns to the pool when the
// rows are closed or fully read.
func (d DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.r.oneShot(ctx, d.id, sql, args)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// QueryRow runs sql for the tenant; errors are deferred to Scan.
func (d DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := d.r.oneShot(ctx, d.id, sql, args)
	return &oneRow{rows: rows, err: err}
}

// The reset of resetSQL, one statement per protocol message (TxLocal).
var resetStmts = []string{
	"CLOSE ALL", "UNLISTEN *", "SELECT pg_advisory_unlock_all()", "DISCARD TEMP", "DISCARD SEQUENCES",
	"DEALLOCATE ALL", "SET SESSION AUTHORIZATION DEFAULT", "RESET ALL",
}

// switchSQL switches and verifies in one statement, which costs the server
// far less than four (each extended-protocol statement has a fixed cost that
// dominates on a busy server): $1 role, $2 search_path, $3
// statement_timeout, $4 is_local, $5 the gateway. The WHERE clause has no
// column references, so PostgreSQL evaluates it once before the target list:
// it raises unless the session is back at the gateway (proof that the reset
// ran, and that nothing switched the role behind the router's back) and the
// session user is the gateway; the error makes the server skip the caller's
// statement. set_config('role') performs exactly the checks of SET ROLE.
//
// It needs EXECUTE on set_config for the gateway, which PostgreSQL grants to
// PUBLIC; a hardened database that revoked it from PUBLIC should grant it to
// the gateway (tenant roles still cannot call it). Without it the router
// falls back to SET statements (noSetConfig).
const switchSQL = "SELECT set_config('role', $1, $4), set_config('search_path', $2, $4), " +
	"set_config('statement_timeout', $3, $4), session_user::text " +
	"WHERE CASE WHEN current_user = session_user AND session_user = $5 THEN true " +
	"ELSE ('bulkhead: session check failed for ' || current_user || '/' || session_user)::int::boolean END"

// verifySQL returns the session's identities and raises an error inside the
// pipeline when they are not the expected ones ($1 the tenant role, $2 the
// gateway), so that the caller's statement queued after it is never executed
// under a wrong identity. The failing cast is not a constant, so the planner
// cannot fold it into an unconditional error.
const verifySQL = "SELECT current_user::text, session_user::text, " +
	"CASE WHEN current_user = $1 AND session_user = $2 THEN 0 " +
	"ELSE ('bulkhead: session verification failed for ' || current_user || '/' || session_user)::int END"

// oneShot checks a connection out for tenant id and sends sql, with the
// switch or the transaction prologue in the same round trip when needed.
func (r *Router) oneShot(ctx context.Context, id tenancy.ID, sql string, args []any) (*oneRows, error) {
	return r.oneShotRetry(ctx, id, sql, args, 2)
}

func (r *Router) oneShotRetry(ctx context.Context, id tenancy.ID, sql string, args []any, retries int) (*oneRows, error) {
	if r.cfg.Mode != SessionRole && r.cfg.Mode != TxLocal {
		return nil, ErrWrongMode
	}
	local := r.cfg.Mode == TxLocal
	fast := r.cfg.StatementCacheSize > 0 && !r.noSetConfig.Load() && plainArgs(args)
	if fast && local {
		// Named statements do not survive a transaction-pooling proxy that
		// hands each transaction another server connection.
		pooled, err := r.txPooler(ctx)
		if err != nil {
			return nil, err
		}
		fast = !pooled
	}
	start := time.Now()
	c, err := r.checkout(ctx, id)
	if err != nil {
		r.traceAcquire(ctx, id, start, false, err)
		return nil, err
	}
	c.start = start
	retry := func(rows *oneRows, err error) (*oneRows, error) {
		if (errors.Is(err, errRetrySwitch) || errors.Is(err, errRetryPlan)) && retries > 0 {
			return r.oneShotRetry(ctx, id, sql, args, retries-1)
		}
		return rows, err
	}
	if fast && c.st.stmts != nil { // nil on connections made without a cache
		return retry(c.fastPipeline(ctx, sql, args, local))
	}
	t, st := c.tenant, c.st
	if local {
		if !plainArgs(args) {
			return c.inLocalTx(ctx, sql, args)
		}
		return retry(c.pipeline(ctx, sql, args, true))
	}
	if st.key == t.Key && !st.dirty && st.version.Equal(t.UpdatedAt) {
		// The common case with affinity: the session already serves t.
		r.traceAcquire(ctx, id, start, false, nil)
		rows, err := c.pc.Query(ctx, sql, args...)
		if err != nil {
			c.Release()
			return nil, err
		}
		return &oneRows{Rows: rows, c: c}, nil
	}
	if (st.key == t.Key && !st.dirty) || !plainArgs(args) {
		// Only the catalog version changed (no reset needed), or the caller
		// passes pgx query options a batch cannot carry: switch first.
		switched, err := c.switchSession(ctx)
		if err != nil {
			c.poisoned = true
			c.Release()
			err = r.switchFailed(ctx, id, err)
			r.traceAcquire(ctx, id, start, switched, err)
			return nil, err
		}
		r.traceAcquire(ctx, id, start, switched, nil)
		rows, err := c.pc.Query(ctx, sql, args...)
		if err != nil {
			c.Release()
			return nil, err
		}
		return &oneRows{Rows: rows, c: c}, nil
	}
	return retry(c.pipeline(ctx, sql, args, false))
}

// errRetrySwitch asks oneShot to retry once after falling back from
// set_config to SET statements.
var errRetrySwitch = errors.New("router: retry the switch without set_config")

// pipeline sends, in one round trip (one network write), the reset when the
// session last served another tenant or its state is unknown, the switch, its
// verification, the caller's statement and, in TxLocal, COMMIT. An error
// before the caller's statement makes the server skip everything up to the
// next Sync: the statement never runs under a wrong identity.
//
// SessionRole sends the reset as DISCARD ALL in a segment of its own (it
// cannot share a transaction), about half the server CPU of the seven
// statements it replaces, and proves it ran before switching: DISCARD ALL
// resets the role, so the next segment refuses to go on unless current_user
// is session_user. TxLocal sessions are back at the gateway between
// transactions whatever happened, so that proof does not exist there; TxLocal
// sends the reset statements in the same segment as the transaction, with a
// COMMIT of their own.
func (c *Conn) pipeline(ctx context.Context, sql string, args []any, local bool) (*oneRows, error) {
	t, st := c.tenant, c.st
	r := c.r
	conn := c.pc.Conn()
	if len(args) > 0 {
		if qr, ok := args[0].(pgx.QueryRewriter); ok {
			var err error
			if sql, args, err = qr.RewriteQuery(ctx, conn, sql, args[1:]); err != nil {
				c.Release()
				return nil, fmt.Errorf("rewrite query failed: %w", err)
			}
		}
	}
	var eqb pgx.ExtendedQueryBuilder
	if err := eqb.Build(conn.TypeMap(), nil, args); err != nil {
		c.Release()
		return nil, err
	}
	reset := st.dirty || (st.key != "" && st.key != t.Key)
	// This path does not track what its statements leave behind: the next
	// tenant change fully resets the session.
	st.clean = false
	if reset && st.stmts != nil {
		st.stmts.clear() // DISCARD ALL and the reset statements deallocate all
	}
	// As in Begin: in TxLocal a checkout "switches" when the tenant changes.
	switched := !local || st.key != t.Key
	// Unknown until verified: if anything below fails, the next checkout
	// resets the session whatever tenant it is for.
	st.key, st.tenant, st.dirty = "", "", true

	p := conn.PgConn().StartPipeline(ctx)
	send := func(q string) { p.SendQueryParams(q, nil, nil, nil, nil) }
	pre := 0 // results before the verification, Syncs included
	useSetConfig := !r.noSetConfig.Load()
	if reset && !local {
		send(discardSQL)
		p.SendPipelineSync()
		pre += 2
		if !useSetConfig {
			send(resetProofSQL)
			pre++
		}
	}
	if reset && local {
		for _, s := range resetStmts {
			send(s)
		}
		send("COMMIT")
		pre += len(resetStmts) + 1
	}
	if local {
		send("BEGIN")
		pre++
	}
	timeout := strconv.FormatInt(r.timeoutFor(t).Milliseconds(), 10)
	path := pathIdent(t.Schema) + ", pg_temp"
	switch {
	case useSetConfig:
		isLocal := "false"
		if local {
			isLocal = "true"
		}
		p.SendQueryParams(switchSQL, [][]byte{[]byte(t.Role), []byte(path), []byte(timeout), []byte(isLocal), []byte(st.gateway)}, nil, nil, nil)
	case local:
		send("SET LOCAL ROLE " + quote(t.Role))
		send("SET LOCAL search_path = " + path)
		send("SET LOCAL statement_timeout = " + timeout)
		pre += 3
		p.SendQueryParams(verifySQL, [][]byte{[]byte(t.Role), []byte(st.gateway)}, nil, nil, nil)
	default:
		send("SET ROLE " + quote(t.Role))
		send("SET search_path = " + path)
		send("SET statement_timeout = " + timeout)
		pre += 3
		p.SendQueryParams(verifySQL, [][]byte{[]byte(t.Role), []byte(st.gateway)}, nil, nil, nil)
	}
	p.SendQueryParams(sql, eqb.ParamValues, nil, eqb.ParamFormats, eqb.ResultFormats)
	if local {
		send("COMMIT")
	}
	p.SendPipelineSync()

	fail := func(err error) (*oneRows, error) { return c.pipelineFailed(ctx, p, err, useSetConfig, switched) }
	if err := p.Flush(); err != nil {
		return fail(err)
	}
	for range pre {
		res, err := p.GetResults()
		if err != nil {
			return fail(err)
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil {
				return fail(err)
			}
		}
	}
	width, suCol := 3, 1
	if useSetConfig {
		width, suCol = 4, 3
	}
	if err := verifySwitch(p, t.Role, st.gateway, width, suCol); err != nil {
		return fail(err)
	}
	if local {
		// The reset is committed and the SET LOCALs end with the
		// transaction: the session last served t, whatever happens next.
		st.key, st.version, st.tenant, st.dirty = t.Key, t.UpdatedAt, t.ID, false
	}
	r.traceAcquire(ctx, t.ID, c.start, switched, nil)
	o := &oneRows{c: c, p: p, local: local, sql: sql, at: time.Now()}
	res, err := p.GetResults()
	if err != nil {
		o.Rows = errRows{err}
	} else if rr, ok := res.(*pgconn.ResultReader); ok {
		o.Rows = pgx.RowsFromResultReader(conn.TypeMap(), rr)
	} else {
		o.Rows = errRows{fmt.Errorf("router: unexpected pipeline result %T", res)}
	}
	return o, nil
}

// pipelineFailed ends a pipeline that failed before the caller's statement:
// the connection is destroyed and the error explained. When the failure is
// a missing EXECUTE on set_config it switches the router to SET statements
// and asks for one retry (errRetrySwitch).
func (c *Conn) pipelineFailed(ctx context.Context, p *pgconn.Pipeline, err error, setConfig, switched bool) (*oneRows, error) {
	_ = p.Close()
	c.poisoned = true
	c.Release()
	r, t := c.r, c.tenant
	var pgErr *pgconn.PgError
	if setConfig && errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege && strings.Contains(pgErr.Message, "set_config") {
		// set_config is revoked from the gateway: fall back to SET
		// statements from now on, and retry this statement once.
		r.noSetConfig.Store(true)
		return nil, errRetrySwitch
	}
	err = r.switchFailed(ctx, t.ID, err)
	r.traceAcquire(ctx, t.ID, c.start, switched, err)
	return nil, err
}

// verifySwitch reads the switch's result: one row of width columns, the
// first the role now in force (wantRole) and column suCol the session user
// (the gateway).
func verifySwitch(p *pgconn.Pipeline, wantRole, gateway string, width, suCol int) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("verifying the switch: unexpected pipeline result %T", res)
	}
	got := rr.Read()
	if got.Err != nil {
		return got.Err
	}
	if len(got.Rows) != 1 || len(got.Rows[0]) != width {
		return fmt.Errorf("verifying the switch: unexpected result shape")
	}
	if role, su := string(got.Rows[0][0]), string(got.Rows[0][suCol]); role != wantRole || su != gateway {
		return fmt.Errorf("verifying the switch: role %q session_user %q, want %q and %q", role, su, wantRole, gateway)
	}
	return nil
}

// discardSQL is DISCARD ALL; tests replace it to make the reset fail.
var discardSQL = "DISCARD ALL"

// resetProofSQL follows DISCARD ALL in the next segment: DISCARD ALL resets
// the role, so if it failed (the previous tenant's role still in force) the
// error raised here makes the server skip the switch and the caller's
// statement.
const resetProofSQL = "SELECT CASE WHEN current_user = session_user THEN 0 " +
	"ELSE ('bulkhead: session reset failed for ' || current_user)::int END"

// errRows are the rows of a statement that failed before returning any.
type errRows struct{ err error }

func (e errRows) Close()                                       {}
func (e errRows) Err() error                                   { return e.err }
func (e errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (e errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (e errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                            { return e.err }
func (e errRows) Values() ([]any, error)                       { return nil, e.err }
func (e errRows) RawValues() [][]byte                          { return nil }
func (e errRows) Conn() *pgx.Conn                              { return nil }
func (e errRows) TypeMap() *pgtype.Map                         { return nil }

// inLocalTx runs sql in a TxLocal transaction begun on its own round trip,
// for arguments a batch cannot carry.
func (c *Conn) inLocalTx(ctx context.Context, sql string, args []any) (*oneRows, error) {
	t := c.tenant
	switched := c.st.key != t.Key
	tx, err := c.beginLocal(ctx, pgx.TxOptions{})
	if err != nil {
		c.poisoned = true
		c.Release()
		err = c.r.switchFailed(ctx, t.ID, err)
		c.r.traceAcquire(ctx, t.ID, c.start, switched, err)
		return nil, err
	}
	c.r.traceAcquire(ctx, t.ID, c.start, switched, nil)
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		_ = tx.Rollback(ctx)
		c.Release()
		return nil, err
	}
	return &oneRows{Rows: rows, c: c, tx: tx}, nil
}

// afterPipeline returns the connection after a pipelined statement: a
// TxLocal transaction left open or failed is rolled back (the connection is
// closed if even that fails).
func (c *Conn) afterPipeline(ctx context.Context, local bool) {
	pg := c.pc.Conn().PgConn()
	if local && !pg.IsClosed() && !pg.IsBusy() && pg.TxStatus() != 'I' {
		if _, err := pg.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			c.poisoned = true
		}
	}
	c.Release()
}

// oneRows are the rows of a single-statement checkout; closing them (or
// reading them to the end) finishes the pipeline and releases the connection.
type oneRows struct {
	pgx.Rows
	c     *Conn
	p     *pgconn.Pipeline // nil when nothing was pipelined
	tx    pgx.Tx           // TxLocal without pipelining: committed on Close
	local bool
	fast  bool  // sent by fastPipeline: no COMMIT to read, state set on Close
	err   error // from finishing the pipeline (TxLocal COMMIT)
	done  bool
	sql   string
	at    time.Time
}

func (o *oneRows) Next() bool {
	if o.Rows.Next() {
		return true
	}
	o.Close()
	return false
}

func (o *oneRows) Err() error {
	if err := o.Rows.Err(); err != nil {
		return err
	}
	return o.err
}

func (o *oneRows) Close() {
	if o.done {
		return
	}
	o.done = true
	o.Rows.Close()
	if o.tx != nil {
		ctx := context.Background()
		if o.Rows.Err() != nil {
			_ = o.tx.Rollback(ctx)
		} else if err := o.tx.Commit(ctx); err != nil {
			o.err = err
		}
		o.c.Release()
		return
	}
	if o.p == nil {
		o.c.Release()
		return
	}
	c, t, st := o.c, o.c.tenant, o.c.st
	stmtErr := o.Rows.Err()
	if o.local && !o.fast && stmtErr == nil {
		// COMMIT's result.
		res, err := o.p.GetResults()
		if err == nil {
			if rr, ok := res.(*pgconn.ResultReader); ok {
				var tag pgconn.CommandTag
				if tag, err = rr.Close(); err == nil && tag.String() == "ROLLBACK" {
					err = pgx.ErrTxCommitRollback
				}
			}
		}
		o.err = err
	}
	// The rest is the final Sync; anything else means the protocol state is
	// not what the router expects, and the connection is closed.
	for {
		res, err := o.p.GetResults()
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				continue
			}
			c.poisoned = true
			break
		}
		if res == nil {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			_, _ = rr.Close()
		}
	}
	if err := o.p.Close(); err != nil {
		c.poisoned = true
	}
	if (!o.local || o.fast) && stmtErr == nil && o.err == nil && trusted(o.Rows.CommandTag(), o.Rows.FieldDescriptions()) {
		st.key, st.version, st.tenant, st.dirty = t.Key, t.UpdatedAt, t.ID, false
	}
	if qt := c.r.queryTracer; qt != nil {
		err := stmtErr
		if err == nil {
			err = o.err
		}
		qt.TraceQuery(context.Background(), QueryData{Tenant: t.ID, SQL: o.sql, Duration: time.Since(o.at), Err: err})
	}
	c.afterPipeline(context.Background(), o.local)
}

// oneRow is the pgx.Row of DB.QueryRow.
type oneRow struct {
	rows *oneRows
	err  error
}

func (r *oneRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	rows := r.rows
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// plainArgs reports whether args carry no pgx query options that a batch
// would take for parameters (a QueryRewriter such as NamedArgs is fine).
func plainArgs(args []any) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return false
	}
	return true
}

func (r *Router) traceAcquire(ctx context.Context, id tenancy.ID, start time.Time, switched bool, err error) {
	if r.cfg.Tracer != nil {
		r.cfg.Tracer.TraceAcquire(ctx, AcquireData{Tenant: id, Wait: time.Since(start), Switched: switched, Err: err})
	}
}

// pathIdent writes schema for a search_path value the way SET does: bare
// when it is a plain lower-case identifier, quoted otherwise, so that
// current_setting('search_path') reads the same whichever way it was set.
func pathIdent(schema string) string {
	for i, r := range schema {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			return quote(schema)
		}
	}
	if schema == "" {
		return quote(schema)
	}
	return schema
}
