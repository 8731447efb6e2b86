package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// LedgerRun is a run as the control-plane ledger recorded it.
type LedgerRun struct {
	ID        int64
	Direction Direction
	// Target is RunOpts.Target as given.
	Target int64
	// State is "running" (or died: a crashed process leaves it so),
	// "succeeded", "failed", "stopped" (canary or error budget) or
	// "interrupted" (context canceled).
	State     string
	Actor     string
	Selection Selection
	// Attempts is 1 plus the number of resumes.
	Attempts                                        int
	Tenants, Succeeded, Failed, Skipped, NotStarted int
	Note                                            string
	StartedAt                                       time.Time
	FinishedAt                                      *time.Time
	// Results has one entry per tenant the run processed, ordered by ID.
	Results []LedgerEntry
}

// LedgerEntry is one tenant's recorded outcome in a run.
type LedgerEntry struct {
	RunID  int64
	Tenant tenancy.ID
	// State is "succeeded", "failed" or "running" (part-way through several
	// migrations, or the run died there).
	State    string
	From, To int64
	Versions []int64
	Attempts int
	Error    string
	SQLState string
	Duration time.Duration
	At       time.Time
}

func ledgerEntry(r dbsqlc.MigrationResult) LedgerEntry {
	e := LedgerEntry{RunID: r.RunID, Tenant: tenancy.ID(r.TenantID), State: r.State, From: r.FromVersion, To: r.ToVersion,
		Versions: r.Versions, Attempts: int(r.Attempts), Duration: time.Duration(r.DurationUs) * time.Microsecond, At: r.FinishedAt.Time}
	if r.Error != nil {
		e.Error = *r.Error
	}
	if r.Sqlstate != nil {
		e.SQLState = *r.Sqlstate
	}
	return e
}

// Ledger returns run id (0: the latest run) with its per-tenant results, or an
// error matching ErrRunNotFound.
func (m *Migrator) Ledger(ctx context.Context, id int64) (*LedgerRun, error) {
	run, err := m.getRun(ctx, id)
	if err != nil {
		return nil, err
	}
	var rows []dbsqlc.MigrationResult
	if err := m.controlTx(ctx, func(q *dbsqlc.Queries) (err error) {
		rows, err = q.ListMigrationResults(ctx, run.ID)
		return err
	}); err != nil {
		return nil, fmt.Errorf("migrate: reading the results of run %d: %w", run.ID, err)
	}
	out := &LedgerRun{ID: run.ID, Direction: Direction(run.Direction), Target: run.Target, State: run.State, Actor: run.Actor,
		Attempts: int(run.Attempts), Tenants: int(run.Tenants), Succeeded: int(run.Succeeded), Failed: int(run.Failed),
		Skipped: int(run.Skipped), NotStarted: int(run.NotStarted), Note: run.Note, StartedAt: run.StartedAt.Time}
	if len(run.Selection) > 0 {
		_ = json.Unmarshal(run.Selection, &out.Selection)
	}
	if run.FinishedAt.Valid {
		t := run.FinishedAt.Time
		out.FinishedAt = &t
	}
	for _, r := range rows {
		out.Results = append(out.Results, ledgerEntry(r))
	}
	return out, nil
}

// getRun reads run id (0: the latest).
func (m *Migrator) getRun(ctx context.Context, id int64) (dbsqlc.MigrationRun, error) {
	var run dbsqlc.MigrationRun
	err := m.controlTx(ctx, func(q *dbsqlc.Queries) (err error) {
		if id == 0 {
			run, err = q.GetLatestMigrationRun(ctx)
		} else {
			run, err = q.GetMigrationRun(ctx, id)
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		if id == 0 {
			return run, fmt.Errorf("migrate: the ledger has no run yet: %w", ErrRunNotFound)
		}
		return run, fmt.Errorf("migrate: run %d: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return run, fmt.Errorf("migrate: reading run %d from the ledger: %w", id, ledgerHint(err))
	}
	return run, nil
}
