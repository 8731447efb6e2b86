package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// MoveResult says what Move did.
type MoveResult struct {
	ID       tenancy.ID
	From, To string
	// Tables and Rows count what was copied.
	Tables int
	Rows   int64
	// WritePause is how long the tenant's tables were locked against writes
	// on the old cluster (SHARE lock: reads went on), from the lock to the
	// catalog switch.
	WritePause time.Duration
	// Duration is the whole move, the removal of the old copy included.
	Duration time.Duration
}

// Move relocates tenant id, with its data, to cluster to. The tenant must be
// active, suspended or archived and keeps its status.
//
// The steps, and what a caller of the router sees at each:
//
//  1. On the new cluster, in one transaction: the runtime role, the schema,
//     the migrations up to the tenant's schema version, the login role and
//     memberships. Nothing is routable there yet (the catalog points to the
//     old cluster).
//  2. On the old cluster, in a REPEATABLE READ transaction: every table of
//     the schema is locked IN SHARE MODE. This waits for the tenant's
//     running writes to finish and starts the write pause: new writes wait
//     for the lock, reads go on. Each table is copied with COPY (tables
//     referenced by foreign keys first, user triggers disabled on the new
//     copy while loading), then the sequences. The new cluster commits.
//  3. Still holding the locks, the old copy is made unroutable: the runtime
//     role loses its table privileges and the gateway its membership, the
//     login role gets NOLOGIN; that commits, which ends the write pause on
//     the old cluster: writes that waited fail with insufficient_privilege
//     (a router retrying after its StatusTTL reaches the new cluster).
//  4. The catalog records the new cluster (and a new updated_at, so routers
//     drop their connections and pools for the tenant within StatusTTL).
//  5. The old copy is dropped, in batches, like Purge.
//
// An error before step 4 leaves the tenant on the old cluster, writable
// again, with nothing left on the new one. A crash of the calling process
// between the commit of step 3 and step 4 leaves the old copy unroutable
// and the new one unrecorded: re-grant the old copy (or switch the catalog
// by hand) and drop the new one; Move does not resume. The pause is the time of step 2
// and 3 (MoveResult.WritePause): proportional to the tenant's data; reads
// are never paused, and writes are delayed, not lost, until the commit of
// step 3, after which they fail until routers see the new cluster.
func (p *Provisioner) Move(ctx context.Context, id tenancy.ID, to string) (*MoveResult, error) {
	start := time.Now()
	res, err := p.move(ctx, id, to)
	if err != nil {
		return nil, fmt.Errorf("provision: moving tenant %q to cluster %q: %w", id, to, err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

func (p *Provisioner) move(ctx context.Context, id tenancy.ID, to string) (*MoveResult, error) {
	t, err := p.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch t.Status {
	case tenancy.StatusActive, tenancy.StatusSuspended, tenancy.StatusArchived:
	default:
		return nil, &tenancy.TransitionError{ID: id, Status: t.Status, Op: "move"}
	}
	if t.Cluster == to {
		return nil, fmt.Errorf("it is already on cluster %q", to)
	}
	srcPool, _, err := p.clusterPool(t.Cluster)
	if err != nil {
		return nil, err
	}
	dstPool, _, err := p.clusterPool(to)
	if err != nil {
		return nil, err
	}
	res := &MoveResult{ID: id, From: t.Cluster, To: to}
	active := t.Status == tenancy.StatusActive
	owner := p.cfg.Naming.OwnerRole()

	// Step 1: the empty structure on the new cluster.
	dst, err := dstPool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer dst.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	ms := p.migrations
	if t.SchemaVersion == 0 {
		ms = nil
	}
	stmts := "CREATE ROLE " + quote(t.Role) + " NOLOGIN NOINHERIT; CREATE SCHEMA " + quote(t.Schema) + " AUTHORIZATION " + quote(owner)
	if _, err := dst.Exec(ctx, stmts); err != nil {
		return nil, fmt.Errorf("creating role and schema on cluster %q: %w", to, err)
	}
	if _, err := dst.Exec(ctx, grantsSQL(owner, t.Schema, t.Role)); err != nil {
		return nil, fmt.Errorf("granting privileges on cluster %q: %w", to, err)
	}
	mres, err := migrate.ApplyTx(ctx, dst, t.Schema, ms, &migrate.ApplyOpts{Role: owner, Target: t.SchemaVersion, LockTimeout: p.cfg.MigrationLockTimeout})
	if err != nil {
		return nil, fmt.Errorf("migrating on cluster %q: %w", to, err)
	}
	if mres.To != t.SchemaVersion {
		return nil, fmt.Errorf("the tenant is at schema version %d, but the migrations only reach %d", t.SchemaVersion, mres.To)
	}
	if _, err := dst.Exec(ctx, "RESET ROLE"); err != nil {
		return nil, err
	}
	if active && !p.cfg.NoGatewayMembership {
		if _, err := dst.Exec(ctx, "GRANT "+quote(t.Role)+" TO "+quote(p.gatewayFor(t.Key))); err != nil {
			return nil, fmt.Errorf("granting the gateway membership on cluster %q: %w", to, err)
		}
	}
	if p.loginEnabled() {
		if err := p.ensureLoginTx(ctx, dst, t.Key, t.Schema, t.Role, active); err != nil {
			return nil, err
		}
	}

	// Step 2: lock and copy. The table list is read first, outside the
	// copy's transaction: in REPEATABLE READ the snapshot is taken by the
	// first query, and it must come after the locks, or a write committed in
	// between would be neither copied nor refused.
	var tables []string
	if err := txOn(ctx, srcPool, func(tx pgx.Tx) error {
		tables, err = copyOrder(ctx, tx, t.Schema)
		return err
	}); err != nil {
		return nil, err
	}
	src, err := srcPool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, err
	}
	defer src.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	pauseStart := time.Now()
	if len(tables) > 0 {
		var qualified []string
		for _, tb := range tables {
			qualified = append(qualified, pgx.Identifier{t.Schema, tb}.Sanitize())
		}
		if _, err := src.Exec(ctx, "SET LOCAL lock_timeout = "+fmt.Sprint(p.cfg.MigrationLockTimeout.Milliseconds())+"; LOCK TABLE "+strings.Join(qualified, ", ")+" IN SHARE MODE"); err != nil {
			return nil, fmt.Errorf("locking the tenant's tables against writes: %w", err)
		}
	}
	// A table created meanwhile (a migration) would be missed: check.
	again, err := copyOrder(ctx, src, t.Schema)
	if err != nil {
		return nil, err
	}
	if strings.Join(again, ",") != strings.Join(tables, ",") {
		return nil, fmt.Errorf("the tenant's tables changed while the move started (a migration?); retry")
	}
	if _, err := dst.Exec(ctx, "SET LOCAL ROLE "+quote(owner)); err != nil {
		return nil, err
	}
	for _, tb := range tables {
		if tb == migrate.VersionTable {
			continue // written by the migrations above
		}
		n, err := copyTable(ctx, src, dst, t.Schema, tb)
		if err != nil {
			return nil, fmt.Errorf("copying table %q: %w", tb, err)
		}
		res.Tables++
		res.Rows += n
	}
	if err := copySequences(ctx, src, dst, t.Schema); err != nil {
		return nil, err
	}
	if _, err := dst.Exec(ctx, "RESET ROLE"); err != nil {
		return nil, err
	}
	if err := dst.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing on cluster %q: %w", to, err)
	}
	undoDst := func(err error) error {
		if cerr := p.dropTenantObjects(ctx, to, t.Key, t.Schema, t.Role); cerr != nil {
			return fmt.Errorf("%w (and removing the new copy from cluster %q failed: %v)", err, to, cerr)
		}
		return err
	}

	// Step 3: the old copy becomes unroutable; writes that waited fail.
	off := []string{
		"REVOKE ALL ON ALL TABLES IN SCHEMA " + quote(t.Schema) + " FROM " + quote(t.Role),
		"REVOKE ALL ON ALL SEQUENCES IN SCHEMA " + quote(t.Schema) + " FROM " + quote(t.Role),
		"REVOKE " + quote(t.Role) + " FROM " + quote(p.gatewayFor(t.Key)),
	}
	if _, err := src.Exec(ctx, strings.Join(off, "; ")); err != nil {
		return nil, undoDst(fmt.Errorf("making the old copy unroutable: %w", err))
	}
	if err := p.setLoginTx(ctx, src, t.Key, t.Schema, t.Role, false); err != nil {
		return nil, undoDst(err)
	}
	if err := src.Commit(ctx); err != nil {
		return nil, undoDst(fmt.Errorf("committing on cluster %q: %w", t.Cluster, err))
	}
	res.WritePause = time.Since(pauseStart)

	// Step 4: the catalog.
	err = p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenantForUpdate(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		if row.Cluster != t.Cluster || row.Status != string(t.Status) {
			return fmt.Errorf("the tenant changed during the move (cluster %q, status %s)", row.Cluster, row.Status)
		}
		if _, err := q.SetTenantCluster(ctx, dbsqlc.SetTenantClusterParams{ID: row.ID, Cluster: to}); err != nil {
			return err
		}
		return audit(ctx, q, id, "tenant.move", t.Schema, map[string]any{"from": t.Cluster, "to": to, "tables": res.Tables, "rows": res.Rows, "write_pause_ms": res.WritePause.Milliseconds()})
	})
	if err != nil {
		// The old copy is intact but unroutable: give it back its privileges.
		return nil, errors.Join(undoDst(fmt.Errorf("switching the catalog: %w", err)), p.restoreSource(ctx, t, active))
	}

	// Step 5: the old copy goes.
	for {
		n, err := p.dropBatch(ctx, srcPool, t.Schema, quote(owner))
		if err != nil {
			return res, fmt.Errorf("moved, but dropping the old copy's tables failed (drop schema %s on cluster %q by hand): %w", t.Schema, t.Cluster, err)
		}
		if n == 0 {
			break
		}
	}
	if err := p.dropTenantObjects(ctx, t.Cluster, t.Key, t.Schema, t.Role); err != nil {
		return res, fmt.Errorf("moved, but dropping the old copy failed (drop schema %s and role %s on cluster %q by hand): %w", t.Schema, t.Role, t.Cluster, err)
	}
	return res, nil
}

// restoreSource undoes step 3 of Move on the old cluster.
func (p *Provisioner) restoreSource(ctx context.Context, t *tenancy.Tenant, active bool) error {
	pool, _, err := p.clusterPool(t.Cluster)
	if err != nil {
		return err
	}
	return txOn(context.WithoutCancel(ctx), pool, func(tx pgx.Tx) error {
		s, r := quote(t.Schema), quote(t.Role)
		stmts := []string{
			"SET LOCAL ROLE " + quote(p.cfg.Naming.OwnerRole()),
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + r,
			"REVOKE INSERT, UPDATE, DELETE ON " + s + "." + quote(migrate.VersionTable) + " FROM " + r,
			"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA " + s + " TO " + r,
			"RESET ROLE",
		}
		if active && !p.cfg.NoGatewayMembership {
			stmts = append(stmts, "GRANT "+r+" TO "+quote(p.gatewayFor(t.Key)))
		}
		if _, err := tx.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
			return err
		}
		if p.loginEnabled() && active {
			return p.setLoginTx(ctx, tx, t.Key, t.Schema, t.Role, true)
		}
		return nil
	})
}

// copyOrder lists the ordinary tables of schema so that every table comes
// after the tables its foreign keys reference (self-references aside).
func copyOrder(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname,
			coalesce((SELECT array_agg(DISTINCT r.relname::text) FROM pg_catalog.pg_constraint k
				JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
				WHERE k.conrelid = c.oid AND k.contype = 'f' AND r.relnamespace = c.relnamespace AND r.oid <> c.oid), '{}')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY c.relname`, schema)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	var names []string
	var name string
	var refs []string
	if _, err := pgx.ForEachRow(rows, []any{&name, &refs}, func() error {
		names = append(names, name)
		deps[name] = append([]string(nil), refs...)
		return nil
	}); err != nil {
		return nil, err
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign keys between the tenant's tables form a cycle through %q; Move cannot order the copy", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyTable streams one table from src to dst with COPY, with dst's user
// triggers disabled meanwhile. Generated columns are left to dst; identity
// columns keep their values.
func copyTable(ctx context.Context, src, dst pgx.Tx, schema, table string) (int64, error) {
	rows, err := src.Query(ctx, `SELECT a.attname FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, pgx.Identifier{schema, table}.Sanitize())
	if err != nil {
		return 0, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	var qc []string
	for _, c := range cols {
		qc = append(qc, quote(c))
	}
	tbl := pgx.Identifier{schema, table}.Sanitize()
	list := "(" + strings.Join(qc, ", ") + ")"
	if _, err := dst.Exec(ctx, "ALTER TABLE "+tbl+" DISABLE TRIGGER USER"); err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	outErr := make(chan error, 1)
	go func() {
		_, err := src.Conn().PgConn().CopyTo(ctx, pw, "COPY (SELECT "+strings.Join(qc, ", ")+" FROM "+tbl+") TO STDOUT WITH (FORMAT binary)")
		pw.CloseWithError(err)
		outErr <- err
	}()
	tag, err := dst.Conn().PgConn().CopyFrom(ctx, pr, "COPY "+tbl+" "+list+" FROM STDIN WITH (FORMAT binary)")
	_ = pr.CloseWithError(io.ErrClosedPipe)
	if oerr := <-outErr; oerr != nil && err == nil {
		err = oerr
	}
	if err != nil {
		return 0, err
	}
	if _, err := dst.Exec(ctx, "ALTER TABLE "+tbl+" ENABLE TRIGGER USER"); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// copySequences gives dst's sequences of schema the state of src's.
func copySequences(ctx context.Context, src, dst pgx.Tx, schema string) error {
	rows, err := src.Query(ctx, `SELECT sequencename, last_value, coalesce(last_value IS NOT NULL, false)
		FROM pg_catalog.pg_sequences WHERE schemaname = $1`, schema)
	if err != nil {
		return err
	}
	type seq struct {
		name   string
		last   *int64
		called bool
	}
	var seqs []seq
	var s seq
	if _, err := pgx.ForEachRow(rows, []any{&s.name, &s.last, &s.called}, func() error {
		seqs = append(seqs, s)
		return nil
	}); err != nil {
		return err
	}
	for _, s := range seqs {
		if s.last == nil {
			continue // never used
		}
		if _, err := dst.Exec(ctx, "SELECT pg_catalog.setval($1::regclass, $2, true)", pgx.Identifier{schema, s.name}.Sanitize(), *s.last); err != nil {
			return fmt.Errorf("setting sequence %q: %w", s.name, err)
		}
	}
	return nil
}
