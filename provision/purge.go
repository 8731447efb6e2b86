package provision

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// PurgeResult says what Purge removed.
type PurgeResult struct {
	ID     tenancy.ID
	Schema string
	// Tables is how many tables, views and sequences were dropped in batches
	// before the schema itself.
	Tables int
	// Batches is how many transactions the drop took.
	Batches int
}

// Purge permanently removes a soft-deleted tenant: its tables, schema, runtime
// role and catalog row (the audit log keeps its history). The tenant must be
// in status deleted; purging before the retention deadline is allowed, since
// it is an explicit operator action, and is recorded as such.
//
// Tables are dropped PurgeBatch at a time, each batch in its own transaction,
// so a schema with thousands of objects does not exhaust
// max_locks_per_transaction. An interrupted Purge leaves the tenant deleted
// with part of its tables gone; calling Purge again finishes the job.
func (p *Provisioner) Purge(ctx context.Context, id tenancy.ID) (*PurgeResult, error) {
	t, err := p.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("provision: purging tenant %q: %w", id, err)
	}
	if t.Status != tenancy.StatusDeleted {
		return nil, fmt.Errorf("provision: purging tenant %q: %w", id, &tenancy.TransitionError{ID: id, Status: t.Status, Op: "purge"})
	}
	res := &PurgeResult{ID: id, Schema: t.Schema}
	owner := quote(p.cfg.Naming.OwnerRole())
	pool, _, err := p.clusterPool(t.Cluster)
	if err != nil {
		return nil, fmt.Errorf("provision: purging tenant %q: %w", id, err)
	}
	for {
		n, err := p.dropBatch(ctx, pool, t.Schema, owner)
		if err != nil {
			return nil, fmt.Errorf("provision: purging tenant %q: dropping tables: %w", id, err)
		}
		if n == 0 {
			break
		}
		res.Tables += n
		res.Batches++
	}
	err = p.controlTx(ctx, func(tx pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenantForUpdate(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		if row.Status != string(tenancy.StatusDeleted) {
			return &tenancy.TransitionError{ID: id, Status: tenancy.Status(row.Status), Op: "purge"}
		}
		// On the tenant's cluster (cluster.go), which commits first.
		if _, err := p.onCluster(ctx, tx, row.Cluster, func(tx pgx.Tx) error {
			// The login role (TenantLogin mode) goes first: it is a member
			// of the runtime role.
			if err := p.dropLoginTx(ctx, tx, tenancy.Key(row.Key)); err != nil {
				return err
			}
			stmts := []string{
				"SET LOCAL ROLE " + owner,
				"DROP SCHEMA IF EXISTS " + quote(row.SchemaName) + " CASCADE",
				"RESET ROLE",
			}
			if _, err := tx.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
				return fmt.Errorf("dropping schema: %w", err)
			}
			return dropRole(ctx, tx, row.RoleName)
		}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, p.controlPath()); err != nil {
			return err
		}
		if err := q.DeleteTenantRow(ctx, row.ID); err != nil {
			return err
		}
		early := row.RetainUntil.Valid && time.Now().Before(row.RetainUntil.Time)
		res.Batches++
		return audit(ctx, q, id, "tenant.purge", row.SchemaName, map[string]any{"tables": res.Tables, "before_retention_deadline": early})
	})
	if err != nil {
		return nil, fmt.Errorf("provision: purging tenant %q: %w", id, err)
	}
	return res, nil
}

// database returns the current database's name ("" on error, which makes
// the statement using it fail loudly).
func (p *Provisioner) database(ctx context.Context, tx pgx.Tx) string {
	var db string
	_ = tx.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	return db
}

// dropBatch drops up to PurgeBatch tables, views and sequences of schema in one
// transaction and reports how many it dropped.
func (p *Provisioner) dropBatch(ctx context.Context, pool *pgxpool.Pool, schema, owner string) (int, error) {
	n := 0
	err := txOn(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
			AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
			AND c.relispartition = false
			ORDER BY c.relname LIMIT $2`, schema, p.cfg.PurgeBatch)
		if err != nil {
			return err
		}
		var names []string
		var kinds []string
		var name string
		var kind pgtype.Text
		if _, err := pgx.ForEachRow(rows, []any{&name, &kind}, func() error {
			names = append(names, name)
			kinds = append(kinds, kind.String)
			return nil
		}); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		var stmts []string
		stmts = append(stmts, "SET LOCAL ROLE "+owner)
		for i, nm := range names {
			what := "TABLE"
			switch kinds[i] {
			case "v":
				what = "VIEW"
			case "m":
				what = "MATERIALIZED VIEW"
			case "S":
				what = "SEQUENCE"
			case "f":
				what = "FOREIGN TABLE"
			}
			stmts = append(stmts, "DROP "+what+" IF EXISTS "+pgx.Identifier{schema, nm}.Sanitize()+" CASCADE")
		}
		if _, err := tx.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
			return err
		}
		n = len(names)
		return nil
	})
	return n, err
}

// PurgeExpired purges every deleted tenant whose retention deadline has
// passed, up to limit tenants (default 100 when limit <= 0), and returns what
// it purged. It stops at the first failure.
func (p *Provisioner) PurgeExpired(ctx context.Context, limit int) ([]*PurgeResult, error) {
	if limit <= 0 {
		limit = 100
	}
	var ids []string
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		var err error
		ids, err = q.ListExpiredTenants(ctx, dbsqlc.ListExpiredTenantsParams{Now: pgtype.Timestamptz{Time: time.Now(), Valid: true}, MaxRows: int32(limit)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provision: listing expired tenants: %w", err)
	}
	var out []*PurgeResult
	for _, id := range ids {
		r, err := p.Purge(ctx, tenancy.ID(id))
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// dropRole drops a tenant role and everything it still owns or was granted in
// this database: large objects it created (they live outside its schema and
// would otherwise block DROP ROLE), privileges an operator granted it (TEMP,
// CONNECT), default privileges. DROP OWNED needs the role's privileges, so
// the admin takes membership first; the grant vanishes with the role in the
// same transaction. A role that does not exist is not an error.
func dropRole(ctx context.Context, tx pgx.Tx, role string) error {
	exists, err := roleExists(ctx, tx, role)
	if err != nil || !exists {
		return err
	}
	r := quote(role)
	if _, err := tx.Exec(ctx, "GRANT "+r+" TO CURRENT_USER; DROP OWNED BY "+r+"; DROP ROLE "+r); err != nil {
		return fmt.Errorf("dropping role %q: %w", role, err)
	}
	return nil
}
