package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
)

// How one migration step reaches the database: one simple-protocol query,
// one round trip, in one transaction:
//
//	BEGIN; SET LOCAL ROLE <owner>; SET LOCAL search_path = <schema>, pg_temp;
//	SET LOCAL lock_timeout = ...; SELECT pg_advisory_xact_lock(<LockKey>);
//	SELECT 1 / (... = '<expected versions:checksums>' ...); -- the guard
//	<the migration's SQL>;
//	INSERT INTO bulkhead_migrations ...;                    -- DELETE for down
//	SET LOCAL ROLE NONE; SET LOCAL search_path = <control>, pg_temp;
//	<sqlc RecordMigrationStep: catalog schema_version + ledger row>;
//	COMMIT
//
// The step is planned from the catalog without a lock; the guard checks the
// plan under the lock and fails with division_by_zero when the schema's
// applied versions are not what the catalog implies (a stale catalog, another
// migrator got there first, an edited file). Then the transaction rolls back,
// the versions are read under the lock (one more round trip, only then), the
// tenant is re-planned from them and the step is sent again, so nothing is
// ever applied twice, and checksum drift and out-of-order versions are
// detected by planUp/planDownStep. Any other error is the migration's (or the
// bookkeeping's) and fails the tenant.
//
// The sqlc query is inlined (simpleDB) because a simple-protocol query
// cannot carry parameters and the extended protocol cannot carry the
// migration's multi-statement SQL. Measured against sending it as a second
// round trip of prepared statements (pgx's statement cache), inlining cost
// less server CPU per tenant (1.7-2.0 ms against 2.4-3.5 ms, with a bare DDL
// loop at 0.6-0.9 ms; see docs/BENCHMARKS.md) and one round trip less.
//
// A migration marked NoTransactionDirective takes a session advisory lock,
// runs its SQL on its own and then records the version in a short
// transaction; the connection is closed on any error so no session state or
// lock survives.

// maxReplans bounds how often one tenant is re-planned within a run.
const maxReplans = 3

// migrateTenant brings tenant w to its target, one transaction per migration.
func (m *Migrator) migrateTenant(ctx context.Context, rs *runState, w *work) TenantResult {
	start := time.Now()
	r := TenantResult{Tenant: w.t.ID, Schema: w.t.Schema, Cluster: w.t.Cluster, From: w.t.SchemaVersion, To: w.t.SchemaVersion}
	pool, primary, err := m.clusterPool(w.t)
	if err != nil {
		return m.fail(ctx, rs, &r, start, err, true)
	}
	w.pool, w.remote = pool, !primary
	var applied map[int64]string // nil until read under the lock
	wrote := false               // a ledger row was written for this tenant in this process
	replans := 0
	for {
		var next *Migration
		var err error
		expect := applied
		if applied == nil {
			next = guess(rs.dir, w, r.To)
			expect = expected(w.ms, r.To)
			if next != nil && rs.dir == Down && next.Down == "" {
				return m.fail(ctx, rs, &r, start, &MigrationError{Schema: w.t.Schema, Version: next.Version, Name: next.Name, Direction: Down,
					Err: fmt.Errorf("no down file (%s.down.sql)", next)}, !wrote)
			}
		} else if next, err = nextStep(rs.dir, w, applied); err != nil {
			return m.fail(ctx, rs, &r, start, err, !wrote)
		}
		if applied != nil && next == nil {
			break
		}
		got, committed, err := m.step(ctx, rs, w, next, expect, &r, start, !wrote)
		if err != nil && ctx.Err() != nil && next != nil && !w.remote {
			// Interrupted: the step may have committed just before.
			if done, reached := m.resolve(ctx, rs, w, next, &r, start); done {
				wrote = true
				if reached {
					r.Duration = time.Since(start)
					r.State = Succeeded
					return r
				}
			}
		}
		if err != nil {
			return m.fail(ctx, rs, &r, start, err, !wrote)
		}
		applied = got
		if !committed && w.remote && current(w.ms, got) != r.To {
			// The schema's version table is the truth: a step committed on
			// the tenant's cluster but the catalog missed it (a crash in
			// between). Catch the catalog up; nothing is applied again.
			if err := m.catchUp(ctx, rs, w, &r, start, got, !wrote); err != nil {
				return m.fail(ctx, rs, &r, start, err, !wrote)
			}
			wrote = true
		}
		if committed {
			wrote = true
			replans = 0
			continue
		}
		m.replans.Add(1)
		if replans++; replans > maxReplans {
			return m.fail(ctx, rs, &r, start, fmt.Errorf("tenant %q: its versions kept changing under the lock; is another tool migrating it?", w.t.ID), !wrote)
		}
	}
	r.Duration = time.Since(start)
	if len(r.Steps) > 0 {
		r.State = Succeeded
	} else {
		r.State = Skipped // another migrator got there first
	}
	return r
}

// resolve finds out, after an interrupted step mg, whether it committed, by
// reading the catalog (which the step updates in its transaction). If it did,
// r is updated; reached says whether the tenant is at its target.
func (m *Migrator) resolve(ctx context.Context, rs *runState, w *work, mg *Migration, r *TenantResult, start time.Time) (done, reached bool) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A canceled query may still be running on the server (pgx closes the
	// socket; the backend notices late) and may yet commit. Its transaction
	// holds the schema's advisory lock: wait for it to end, then read.
	var v int64
	err := func() error {
		tx, err := m.pool.BeginTx(rctx, pgx.TxOptions{BeginQuery: "BEGIN; " + m.ctlSQL})
		if err != nil {
			return err
		}
		defer tx.Rollback(rctx) //nolint:errcheck // read-only
		if _, err := tx.Exec(rctx, "SELECT pg_advisory_xact_lock($1)", LockKey(w.t.Schema)); err != nil {
			return err
		}
		row, err := dbsqlc.New(tx).GetTenant(rctx, string(w.t.ID))
		v = row.SchemaVersion
		return err
	}()
	if err != nil || v == r.To {
		return false, false
	}
	r.Steps = append(r.Steps, StepResult{Version: mg.Version, Name: mg.Name, Duration: time.Since(start)})
	r.To = v
	if rs.dir == Up {
		return true, v >= w.target
	}
	return true, v <= w.target
}

// guess is the next step as the catalog's version v suggests, or nil when
// only a read under the lock can tell.
func guess(dir Direction, w *work, v int64) *Migration {
	for _, mg := range w.ms {
		switch {
		case dir == Up && mg.Version > v && mg.Version <= w.target:
			return mg
		case dir == Down && mg.Version == v && v > w.target:
			return mg
		}
	}
	return nil
}

// nextStep is the next migration to apply (up) or revert (down) given the
// versions applied to the schema, or nil when the tenant is at its target.
func nextStep(dir Direction, w *work, applied map[int64]string) (*Migration, error) {
	if dir == Up {
		pending, _, err := planUp(w.t.Schema, w.ms, applied, w.target)
		if err != nil || len(pending) == 0 {
			return nil, err
		}
		return pending[0], nil
	}
	return planDownStep(w.t.Schema, w.ms, applied, w.target)
}

// fail records a failed tenant in its result and the ledger.
func (m *Migrator) fail(ctx context.Context, rs *runState, r *TenantResult, start time.Time, err error, newAttempt bool) TenantResult {
	r.State = Failed
	r.Err = err
	r.SQLState = sqlState(err)
	r.Duration = time.Since(start)
	msg := err.Error()
	var code *string
	if r.SQLState != "" {
		code = &r.SQLState
	}
	// Record even when ctx is done: the ledger must say the tenant did not finish.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	lerr := m.controlTx(lctx, func(q *dbsqlc.Queries) error {
		return q.UpsertMigrationResult(lctx, dbsqlc.UpsertMigrationResultParams{
			RunID: rs.id, TenantID: string(r.Tenant), State: "failed", FromVersion: r.From, ToVersion: r.To,
			Versions: stepVersions(r.Steps), Error: &msg, Sqlstate: code, DurationUs: r.Duration.Microseconds(), NewAttempt: newAttempt,
		})
	})
	if lerr != nil {
		r.Err = errors.Join(err, fmt.Errorf("recording the failure in the ledger: %w", lerr))
	}
	return *r
}

func stepVersions(steps []StepResult) []int64 {
	out := make([]int64, len(steps))
	for i, s := range steps {
		out[i] = s.Version
	}
	return out
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// expected is the applied set the catalog's version v implies: every
// migration of ms up to v, with its checksum.
func expected(ms []*Migration, v int64) map[int64]string {
	out := map[int64]string{}
	for _, mg := range ms {
		if mg.Version <= v {
			out[mg.Version] = mg.Checksum
		}
	}
	return out
}

// guardSQL fails with division_by_zero (22012) unless the version table of the
// schema on the search_path holds exactly expect. Its literal is digits, ':',
// ',' and hex.
func guardSQL(expect map[int64]string) string {
	vs := make([]int64, 0, len(expect))
	for v := range expect {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(v, 10))
		b.WriteByte(':')
		b.WriteString(expect[v])
	}
	return "SELECT 1 / (SELECT CASE WHEN coalesce(string_agg(version::text || ':' || checksum, ',' ORDER BY version), '') = '" +
		b.String() + "' THEN 1 ELSE 0 END FROM " + pgx.Identifier{VersionTable}.Sanitize() + ") AS bulkhead_guard"
}

// prelude starts a step's transaction on schema: role, search_path,
// lock_timeout and the schema's advisory lock (results 0 to 4).
func (m *Migrator) prelude(schema string) string {
	return "BEGIN; SET LOCAL ROLE " + pgx.Identifier{m.owner}.Sanitize() +
		"; SET LOCAL search_path = " + pgx.Identifier{schema}.Sanitize() + ", pg_temp" +
		"; SET LOCAL lock_timeout = " + strconv.FormatInt(m.cfg.LockTimeout.Milliseconds(), 10) +
		"; SELECT pg_advisory_xact_lock(" + strconv.FormatInt(LockKey(schema), 10) + ")"
}

// readApplied reads, under the schema's lock, the versions applied to it.
func (m *Migrator) readApplied(ctx context.Context, pc *pgconn.PgConn, dir Direction, schema string) (map[int64]string, error) {
	results, err := pc.Exec(ctx, m.prelude(schema)+"; SELECT version, checksum FROM "+pgx.Identifier{VersionTable}.Sanitize()+"; ROLLBACK").ReadAll()
	applied, ok := parseApplied(results, 5)
	if !ok {
		if !pc.IsClosed() {
			_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
		}
		return nil, &MigrationError{Schema: schema, Direction: dir,
			Err: fmt.Errorf("locking the schema and reading %s: %w", VersionTable, err)}
	}
	return applied, nil
}

// step runs migration mg (nil: only read the applied versions) for tenant w in
// one transaction and one round trip, provided the schema's applied versions
// are exactly expect. It returns the applied versions after the step (as read
// under the lock, updated by the step when it committed). committed false with
// a nil error means: re-plan from the returned versions.
func (m *Migrator) step(ctx context.Context, rs *runState, w *work, mg *Migration, expect map[int64]string, r *TenantResult, start time.Time, newAttempt bool) (map[int64]string, bool, error) {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("tenant %q: acquiring a connection on cluster %q: %w", w.t.ID, w.t.Cluster, err)
	}
	defer conn.Release()
	if mg != nil && (rs.dir == Up && mg.NoTransaction || rs.dir == Down && mg.DownNoTransaction) {
		return m.stepNoTx(ctx, rs, w, mg, r, start, newAttempt, conn)
	}
	schema := w.t.Schema
	pc := conn.Conn().PgConn()
	if mg == nil {
		applied, err := m.readApplied(ctx, pc, rs.dir, schema)
		return applied, false, err
	}

	after := make(map[int64]string, len(expect)+1)
	for v, sum := range expect {
		after[v] = sum
	}
	if rs.dir == Up {
		after[mg.Version] = mg.Checksum
	} else {
		delete(after, mg.Version)
	}
	var sql strings.Builder
	sql.WriteString(m.prelude(schema))
	sql.WriteString("; ")
	sql.WriteString(guardSQL(expect))
	sql.WriteString(";\n")
	sql.WriteString(body(rs.dir, mg))
	sql.WriteString("\n;\n")
	sql.WriteString(versionSQL(rs.dir, mg))
	params := m.stepParams(rs, w, mg, r, start, newAttempt, after)
	if w.remote {
		// The catalog is on the primary: it records the step right after
		// this commit (recordRemote).
		sql.WriteString(";\n")
	} else {
		sql.WriteString("; SET LOCAL ROLE NONE; ")
		sql.WriteString(m.ctlSQL)
		sql.WriteString(";\n")
		if err := dbsqlc.New(&simpleDB{b: &sql}).RecordMigrationStep(ctx, params); err != nil {
			return nil, false, err
		}
	}
	sql.WriteString("COMMIT")
	if m.beforeStep != nil {
		m.beforeStep(w.t.ID, mg.Version)
	}
	results, execErr := pc.Exec(ctx, sql.String()).ReadAll()
	if execErr == nil {
		if w.remote {
			if err := m.recordRemote(ctx, w, mg, params); err != nil {
				return nil, false, err
			}
		}
		m.committed(w, mg, r, start, after)
		return after, true, nil
	}
	if !pc.IsClosed() {
		_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
	}
	switch ok := leadingOK(results); {
	case ok < 5:
		return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir,
			Err: fmt.Errorf("locking the schema: %w", execErr)}
	case ok == 5 && sqlState(execErr) == "22012":
		// The guard: the schema is not where the plan assumed. Read what it
		// has, under the lock, and re-plan.
		if pc.IsClosed() {
			return nil, false, execErr
		}
		applied, err := m.readApplied(ctx, pc, rs.dir, schema)
		return applied, false, err
	}
	return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir, Err: execErr}
}

// leadingOK counts the results before the first failed one.
func leadingOK(results []*pgconn.Result) int {
	for i, r := range results {
		if r.Err != nil {
			return i
		}
	}
	return len(results)
}

// stepNoTx runs a migration marked NoTransactionDirective.
func (m *Migrator) stepNoTx(ctx context.Context, rs *runState, w *work, mg *Migration, r *TenantResult, start time.Time, newAttempt bool, conn *pgxpool.Conn) (map[int64]string, bool, error) {
	schema := w.t.Schema
	key := LockKey(schema)
	pc := conn.Conn().PgConn()
	// Any error closes the connection: its session role, search_path and
	// advisory lock die with it, and the pool replaces it.
	kill := func() { _ = conn.Conn().Close(context.WithoutCancel(ctx)) }
	sql := "SET ROLE " + pgx.Identifier{m.owner}.Sanitize() +
		"; SET search_path = " + pgx.Identifier{schema}.Sanitize() + ", pg_temp" +
		"; SET lock_timeout = " + strconv.FormatInt(m.cfg.LockTimeout.Milliseconds(), 10) +
		"; SELECT pg_advisory_lock(" + strconv.FormatInt(key, 10) + ")" +
		"; SELECT version, checksum FROM " + pgx.Identifier{VersionTable}.Sanitize()
	results, execErr := pc.Exec(ctx, sql).ReadAll()
	applied, ok := parseApplied(results, 4)
	if !ok {
		kill()
		return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir,
			Err: fmt.Errorf("locking the schema and reading %s: %w", VersionTable, execErr)}
	}
	reset := "RESET ROLE; RESET search_path; RESET lock_timeout; SELECT pg_advisory_unlock(" + strconv.FormatInt(key, 10) + ")"
	next, err := nextStep(rs.dir, w, applied)
	if err != nil || next == nil || next.Version != mg.Version {
		if _, rerr := pc.Exec(ctx, reset).ReadAll(); rerr != nil {
			kill()
		}
		return applied, false, err
	}
	if m.beforeStep != nil {
		m.beforeStep(w.t.ID, mg.Version)
	}
	if _, err := pc.Exec(ctx, body(rs.dir, mg)).ReadAll(); err != nil {
		kill()
		return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir, Err: err}
	}
	if _, err := pc.Exec(ctx, "BEGIN; "+versionSQL(rs.dir, mg)+"; SET LOCAL ROLE NONE; "+m.ctlSQL).ReadAll(); err != nil {
		kill()
		return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir,
			Err: fmt.Errorf("the migration ran outside a transaction but recording its version failed; the next run re-runs it, so make it idempotent (IF NOT EXISTS): %w", err)}
	}
	after := make(map[int64]string, len(applied)+1)
	for v, sum := range applied {
		after[v] = sum
	}
	if rs.dir == Up {
		after[mg.Version] = mg.Checksum
	} else {
		delete(after, mg.Version)
	}
	b := &pgx.Batch{}
	params := m.stepParams(rs, w, mg, r, start, newAttempt, after)
	if !w.remote {
		if err := dbsqlc.New(batchDB{b}).RecordMigrationStep(ctx, params); err != nil {
			kill()
			return nil, false, err
		}
	}
	b.Queue("COMMIT")
	b.Queue("RESET ROLE")
	b.Queue("RESET search_path")
	b.Queue("RESET lock_timeout")
	b.Queue("SELECT pg_advisory_unlock($1)", key)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		kill()
		return nil, false, &MigrationError{Schema: schema, Version: mg.Version, Name: mg.Name, Direction: rs.dir,
			Err: fmt.Errorf("the migration ran outside a transaction but recording its version failed; the next run re-runs it, so make it idempotent (IF NOT EXISTS): %w", err)}
	}
	if w.remote {
		if err := m.recordRemote(ctx, w, mg, params); err != nil {
			return nil, false, err
		}
	}
	m.committed(w, mg, r, start, after)
	return after, true, nil
}

// stepParams is the control-plane statement that records step mg (nil: no
// step, only the catalog catching up with the schema): the catalog's
// schema_version and the ledger row. after is the applied set once the step
// commits. On the primary it travels in the step's own transaction (inlined
// or queued); for a tenant on another cluster recordRemote sends it after
// the step committed there.
func (m *Migrator) stepParams(rs *runState, w *work, mg *Migration, r *TenantResult, start time.Time, newAttempt bool, after map[int64]string) dbsqlc.RecordMigrationStepParams {
	state := "running"
	if next, err := nextStep(rs.dir, w, after); err == nil && next == nil {
		state = "succeeded"
	}
	versions := stepVersions(r.Steps)
	if mg != nil {
		versions = append(versions, mg.Version)
	}
	return dbsqlc.RecordMigrationStepParams{
		RunID: rs.id, TenantID: string(w.t.ID), State: state, FromVersion: r.From, ToVersion: current(w.ms, after),
		Versions: versions, DurationUs: time.Since(start).Microseconds(), NewAttempt: newAttempt,
	}
}

// recordRemote records, on the primary, step mg that just committed on
// tenant w's other cluster. It runs even when ctx is done, to keep the window
// between the two commits short; if it fails anyway (or the process dies
// first), the next run finds the catalog behind the schema and catches it up
// (catchUp) without applying anything again.
func (m *Migrator) recordRemote(ctx context.Context, w *work, mg *Migration, params dbsqlc.RecordMigrationStepParams) error {
	err := func() error {
		if m.afterRemoteCommit != nil {
			if err := m.afterRemoteCommit(w.t.ID, mg.Version); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return m.controlTx(rctx, func(q *dbsqlc.Queries) error { return q.RecordMigrationStep(rctx, params) })
	}()
	if err != nil {
		return fmt.Errorf("tenant %q: %s committed on cluster %q but recording it in the catalog failed; the next run catches the catalog up without applying it again: %w", w.t.ID, mg, w.t.Cluster, err)
	}
	return nil
}

// catchUp sets the catalog's schema_version of tenant w (on another cluster)
// to what its version table says, read under its lock, and records that in
// the run's ledger row.
func (m *Migrator) catchUp(ctx context.Context, rs *runState, w *work, r *TenantResult, start time.Time, applied map[int64]string, newAttempt bool) error {
	params := m.stepParams(rs, w, nil, r, start, newAttempt, applied)
	if err := m.controlTx(ctx, func(q *dbsqlc.Queries) error { return q.RecordMigrationStep(ctx, params) }); err != nil {
		return fmt.Errorf("tenant %q: catching the catalog up from version %d to the schema's %d: %w", w.t.ID, r.To, params.ToVersion, err)
	}
	r.To = params.ToVersion
	r.CatalogRepaired = true
	return nil
}

// committed updates r after step mg committed.
func (m *Migrator) committed(w *work, mg *Migration, r *TenantResult, start time.Time, after map[int64]string) {
	r.Steps = append(r.Steps, StepResult{Version: mg.Version, Name: mg.Name, Duration: time.Since(start)})
	r.To = current(w.ms, after)
}

// current is the schema's version given its applied set: the highest applied
// version among ms, or 0.
func current(ms []*Migration, applied map[int64]string) int64 {
	var v int64
	for _, mg := range ms {
		if _, ok := applied[mg.Version]; ok {
			v = mg.Version
		}
	}
	return v
}

// versionSQL records (up) or removes (down) mg's row in the version table of
// the schema on the search_path. Its literals are safe by construction: Load
// accepts only [a-z0-9_] names and the checksum is hex.
func versionSQL(dir Direction, mg *Migration) string {
	v := strconv.FormatInt(mg.Version, 10)
	if dir == Down {
		return "DELETE FROM " + pgx.Identifier{VersionTable}.Sanitize() + " WHERE version = " + v
	}
	return "INSERT INTO " + pgx.Identifier{VersionTable}.Sanitize() + " (version, name, checksum) VALUES (" + v + ", '" + mg.Name + "', '" + mg.Checksum + "')"
}

func body(dir Direction, mg *Migration) string {
	if dir == Down {
		return mg.Down
	}
	return mg.Up
}

func version(mg *Migration) int64 {
	if mg == nil {
		return 0
	}
	return mg.Version
}

func name(mg *Migration) string {
	if mg == nil {
		return ""
	}
	return mg.Name
}

// parseApplied reads the version table's rows from results[i].
func parseApplied(results []*pgconn.Result, i int) (map[int64]string, bool) {
	if len(results) <= i || results[i].Err != nil {
		return nil, false
	}
	out := make(map[int64]string, len(results[i].Rows))
	for _, row := range results[i].Rows {
		if len(row) != 2 {
			return nil, false
		}
		v, err := strconv.ParseInt(string(row[0]), 10, 64)
		if err != nil {
			return nil, false
		}
		out[v] = string(row[1])
	}
	return out, true
}

// batchDB lets sqlc-generated :exec queries be queued in a pgx.Batch, so the
// control-plane bookkeeping of a step travels in the same round trip as its
// COMMIT while still going through the generated code.
type batchDB struct{ b *pgx.Batch }

func (d batchDB) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	d.b.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (d batchDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("migrate: batchDB queues :exec queries only")
}

func (d batchDB) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errors.New("migrate: batchDB queues :exec queries only") }
