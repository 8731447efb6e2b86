package migrate

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// VersionTable is the table, in each migrated schema, that records applied
// migrations.
const VersionTable = "bulkhead_migrations"

// ApplyOpts are options for ApplyTx. A nil *ApplyOpts means all defaults.
type ApplyOpts struct {
	// Role, when set, is the role the migrations run as (SET LOCAL ROLE), and
	// so the owner of what they create. Default: the transaction's current role.
	Role string
	// Target is the version to migrate up to. Default (0): the latest.
	Target int64
	// LockTimeout bounds how long a statement waits for a lock, so a migration
	// never queues forever behind a long tenant transaction. Default: 5s.
	LockTimeout time.Duration
}

// ApplyResult is the outcome of ApplyTx.
type ApplyResult struct {
	Schema string
	// From and To are the schema's versions before and after.
	From, To int64
	// Applied lists the migrations applied, in order.
	Applied []StepResult
}

// StepResult is one applied migration.
type StepResult struct {
	Version  int64
	Name     string
	Duration time.Duration
}

// LockKey is the advisory-lock key of a schema: migrations of one schema
// serialize on it, migrations of different schemas never wait for each other.
func LockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("bulkhead.migrate:" + schema))
	return int64(h.Sum64())
}

// EnsureVersionTable creates schema's version table if it does not exist.
func EnsureVersionTable(ctx context.Context, tx pgx.Tx, schema string) error {
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+pgx.Identifier{schema, VersionTable}.Sanitize()+` (
	version    bigint      PRIMARY KEY,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("creating %s in schema %q: %w", VersionTable, schema, err)
	}
	return nil
}

// ApplyTx applies to schema, inside tx, every migration of ms above the
// schema's current version up to opts.Target, recording each in the schema's
// version table in the same transaction. It first verifies the checksums of the
// migrations already applied. On error the caller must roll tx back.
//
// The schema must exist. ApplyTx leaves role and search_path set for the rest
// of the transaction (SET LOCAL); they end with it.
func ApplyTx(ctx context.Context, tx pgx.Tx, schema string, ms []*Migration, opts *ApplyOpts) (*ApplyResult, error) {
	if opts == nil {
		opts = &ApplyOpts{}
	}
	lockTimeout := opts.LockTimeout
	if lockTimeout == 0 {
		lockTimeout = 5 * time.Second
	}
	target := opts.Target
	if target == 0 {
		target = Latest(ms)
	}
	setup := fmt.Sprintf("SET LOCAL search_path = %s, pg_temp; SET LOCAL lock_timeout = %d",
		pgx.Identifier{schema}.Sanitize(), lockTimeout.Milliseconds())
	if opts.Role != "" {
		setup = "SET LOCAL ROLE " + pgx.Identifier{opts.Role}.Sanitize() + "; " + setup
	}
	if _, err := tx.Exec(ctx, setup); err != nil {
		return nil, fmt.Errorf("preparing to migrate schema %q: %w", schema, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", LockKey(schema)); err != nil {
		return nil, fmt.Errorf("locking schema %q for migration: %w", schema, err)
	}
	if err := EnsureVersionTable(ctx, tx, schema); err != nil {
		return nil, err
	}
	applied, err := appliedVersions(ctx, tx, schema)
	if err != nil {
		return nil, err
	}
	pending, from, err := planUp(schema, ms, applied, target)
	if err != nil {
		return nil, err
	}
	res := &ApplyResult{Schema: schema, From: from, To: from}
	table := pgx.Identifier{schema, VersionTable}.Sanitize()
	for _, m := range pending {
		if m.NoTransaction {
			return nil, &MigrationError{Schema: schema, Version: m.Version, Name: m.Name,
				Err: fmt.Errorf("marked %q and cannot run inside a transaction", NoTransactionDirective)}
		}
		start := time.Now()
		if _, err := tx.Exec(ctx, m.Up); err != nil {
			return nil, &MigrationError{Schema: schema, Version: m.Version, Name: m.Name, Err: err}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum); err != nil {
			return nil, &MigrationError{Schema: schema, Version: m.Version, Name: m.Name, Err: fmt.Errorf("recording version: %w", err)}
		}
		res.Applied = append(res.Applied, StepResult{Version: m.Version, Name: m.Name, Duration: time.Since(start)})
		res.To = m.Version
	}
	return res, nil
}

func appliedVersions(ctx context.Context, tx pgx.Tx, schema string) (map[int64]string, error) {
	rows, err := tx.Query(ctx, "SELECT version, checksum FROM "+pgx.Identifier{schema, VersionTable}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations of schema %q: %w", schema, err)
	}
	out := map[int64]string{}
	var v int64
	var sum string
	_, err = pgx.ForEachRow(rows, []any{&v, &sum}, func() error { out[v] = sum; return nil })
	if err != nil {
		return nil, fmt.Errorf("reading applied migrations of schema %q: %w", schema, err)
	}
	return out, nil
}
