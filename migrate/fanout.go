package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Direction says which way a run migrates.
type Direction string

// The directions of a run.
const (
	Up   Direction = "up"
	Down Direction = "down"
)

// State is the outcome of one tenant in a run.
type State string

// The outcomes of a tenant in a run.
const (
	// Succeeded: at least one migration was applied (up) or reverted (down)
	// and the tenant reached its target.
	Succeeded State = "succeeded"
	// Failed: a migration failed; the tenant stays at the last version that
	// committed (every migration is its own transaction) and is retried by
	// the next run. TenantResult.Err says why.
	Failed State = "failed"
	// Skipped: the tenant was already at its target (decided from the
	// catalog, without a lock), or another migrator got there first.
	Skipped State = "skipped"
	// NotStarted: the run stopped (canary failed, error budget spent, context
	// canceled) before reaching the tenant. The next run picks it up.
	NotStarted State = "not-started"
)

// Migrator fans tenant migrations out to many tenants: bounded parallelism,
// one transaction per migration per tenant, a per-tenant advisory lock, a
// canary phase, an error budget, a durable ledger and resume. It is safe for
// concurrent use, and several Migrators (in several processes) may run at once:
// per-tenant locks make sure nothing is applied twice.
type Migrator struct {
	pool   *pgxpool.Pool
	cfg    *Config
	base   []*Migration
	par    int
	owner  string
	ctlSQL string // SET LOCAL search_path = <control>, pg_temp

	mu     sync.Mutex
	groups map[string][]*Migration // merged sets by Extra group

	// beforeStep, when set (tests only), is called right before a migration
	// step is sent to the database.
	beforeStep func(tenant tenancy.ID, version int64)
	// afterRemoteCommit, when set (tests only), is called after a step
	// committed on a tenant's other cluster and before the catalog records
	// it; an error stands for a crash in between (the catalog is not
	// written).
	afterRemoteCommit func(tenant tenancy.ID, version int64) error
	// replans counts steps that were not committed because the schema was not
	// where the plan said (tests check it stays 0 on the fast path).
	replans atomic.Int64
}

// New returns a Migrator over the admin pool for the common tenant migrations
// in fsys (NNNN_name.up.sql files at its root). The pool's role must be the
// one provision.Init ran as: it owns the control schema and is a member of the
// tenant owner role. New does no I/O beyond reading fsys.
func New(admin *pgxpool.Pool, fsys fs.FS, cfg *Config) (*Migrator, error) {
	if admin == nil {
		return nil, errors.New("migrate: New: admin pool is nil")
	}
	if fsys == nil {
		return nil, errors.New("migrate: New: migrations fs.FS is nil")
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	par := c.Parallelism
	if par == 0 {
		par = int(admin.Config().MaxConns) - 1
		par = max(1, min(par, 8))
	}
	return &Migrator{
		pool:   admin,
		cfg:    c,
		base:   ms,
		par:    par,
		owner:  c.Naming.OwnerRole(),
		ctlSQL: "SET LOCAL search_path = " + pgx.Identifier{c.ControlSchema}.Sanitize() + ", pg_temp",
		groups: map[string][]*Migration{},
	}, nil
}

// clusterNames returns the configured clusters, the primary first.
func (m *Migrator) clusterNames() []string {
	others := make([]string, 0, len(m.cfg.Clusters))
	for n := range m.cfg.Clusters {
		others = append(others, n)
	}
	sort.Strings(others)
	return append([]string{m.cfg.Cluster}, others...)
}

// clusterPool returns the admin pool of tenant t's cluster, and whether it is
// the primary (the catalog's own pool).
func (m *Migrator) clusterPool(t *tenancy.Tenant) (*pgxpool.Pool, bool, error) {
	if t.Cluster == m.cfg.Cluster || t.Cluster == "" {
		return m.pool, true, nil
	}
	if pool, ok := m.cfg.Clusters[t.Cluster]; ok {
		return pool, false, nil
	}
	return nil, false, &UnknownClusterError{Tenant: t.ID, Cluster: t.Cluster, Configured: m.clusterNames()}
}

// Migrations returns the common migrations, sorted by version.
func (m *Migrator) Migrations() []*Migration { return m.base }

// Parallelism returns how many tenants a run migrates at once.
func (m *Migrator) Parallelism() int { return m.par }

// Selection chooses the tenants of a run. The zero value selects every tenant
// whose status is active, suspended or archived. The conditions combine with
// AND.
type Selection struct {
	// IDs, when set, is the list of tenants to consider.
	IDs []tenancy.ID `json:"ids,omitempty"`
	// Prefix keeps tenants whose ID starts with it.
	Prefix string `json:"prefix,omitempty"`
	// Statuses keeps tenants in these statuses. Default: active, suspended,
	// archived (soft-deleted tenants are migrated when restored, by the next
	// run).
	Statuses []tenancy.Status `json:"statuses,omitempty"`
	// Match, when set, keeps the tenants for which it returns true. It is not
	// recorded in the ledger, so a resumed run needs it again.
	Match func(t *tenancy.Tenant) bool `json:"-"`
}

func (s *Selection) isZero() bool {
	return s == nil || len(s.IDs) == 0 && s.Prefix == "" && len(s.Statuses) == 0 && s.Match == nil
}

// RunOpts are options for Up, Down and Plan. A nil *RunOpts means all defaults.
type RunOpts struct {
	// Tenants selects the tenants. Default: all (see Selection).
	Tenants Selection
	// Target is the version to migrate to. Up: 0 means the latest. Down: 0
	// means one step (each tenant reverts its latest migration), -1 means all
	// the way down, n > 0 reverts every migration above n.
	Target int64
	// Canary is how many tenants (the first behind ones, by ID) are migrated
	// first, as a phase of their own; if any of them fails, the run stops
	// before touching the rest. Default: 0, no canary phase.
	Canary int
	// CanaryIDs names the canary tenants instead of taking the first Canary.
	CanaryIDs []tenancy.ID
	// ErrorBudget stops the run from starting new tenants once this many have
	// failed (tenants in flight finish). Default: 0, no limit: every tenant is
	// tried and failures are collected.
	ErrorBudget int
	// FailFast stops at the first failure (the same as ErrorBudget 1).
	FailFast bool
	// Resume continues the run with this id (see RunResult.RunID and the
	// ledger): tenants it completed are skipped (they are at target), failed
	// and unfinished ones are tried again, all recorded under the same id. The
	// direction and target are the run's; Tenants defaults to the run's
	// recorded selection. Default: 0, a new run.
	Resume int64
}

// TenantResult is the outcome of one tenant in a run.
type TenantResult struct {
	Tenant tenancy.ID
	Schema string
	// Cluster is the tenant's cluster, as the catalog records it.
	Cluster string
	State   State
	// From and To are the tenant's versions before and after.
	From, To int64
	// Steps lists the migrations applied (up) or reverted (down), in order.
	Steps []StepResult
	// Duration is the time spent on the tenant.
	Duration time.Duration
	// Err is why the tenant failed: a *MigrationError (SQL error, with its
	// SQLSTATE), a *ChecksumError (an applied file changed) or a context or
	// connection error.
	Err error
	// SQLState is the PostgreSQL error code of Err, or "".
	SQLState string
	// CatalogRepaired says the catalog's schema_version was behind (or
	// ahead of) the schema's version table, for a tenant on another cluster
	// after a crash between the two commits, and was set from the table.
	CatalogRepaired bool
}

// RunResult is the outcome of Up or Down.
type RunResult struct {
	// RunID identifies the run in the ledger; pass it as RunOpts.Resume to
	// continue an interrupted run.
	RunID     int64
	Direction Direction
	// Tenants has one entry per selected tenant, ordered by ID.
	Tenants []TenantResult
	// Counts by state.
	Succeeded, Failed, Skipped, NotStarted int
	Duration                               time.Duration
	// Stopped is why the run stopped early, or nil (ErrCanaryFailed,
	// ErrBudgetExhausted, or the context's error).
	Stopped error
}

// Up migrates the selected tenants up to opts.Target (default: the latest).
// It returns every tenant's outcome; when any tenant failed or was not reached
// the error is a *PartialError carrying the same result.
func (m *Migrator) Up(ctx context.Context, opts *RunOpts) (*RunResult, error) {
	return m.run(ctx, Up, opts)
}

// Down reverts migrations of the selected tenants: by default each tenant's
// latest one (see RunOpts.Target). Every reverted migration must have a down
// file. Errors are as for Up.
func (m *Migrator) Down(ctx context.Context, opts *RunOpts) (*RunResult, error) {
	return m.run(ctx, Down, opts)
}

// work is one tenant a run must process.
type work struct {
	t      *tenancy.Tenant
	ms     []*Migration
	target int64 // normalized per tenant: a version of ms, or 0
	// pool is the admin pool of the tenant's cluster; remote says it is not
	// the primary's (set by migrateTenant).
	pool   *pgxpool.Pool
	remote bool
}

// candidates reads the selected tenants (one catalog query) and the
// migrations of each.
func (m *Migrator) candidates(ctx context.Context, sel *Selection) ([]*tenancy.Tenant, error) {
	statuses := []string{string(tenancy.StatusActive), string(tenancy.StatusSuspended), string(tenancy.StatusArchived)}
	if len(sel.Statuses) > 0 {
		statuses = statuses[:0]
		for _, s := range sel.Statuses {
			if !s.Valid() {
				return nil, fmt.Errorf("migrate: Selection.Statuses: %q is not a tenant status", s)
			}
			statuses = append(statuses, string(s))
		}
	}
	var ids []string
	for _, id := range sel.IDs {
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("migrate: Selection.IDs: %w", err)
		}
		ids = append(ids, string(id))
	}
	var prefix *string
	if sel.Prefix != "" {
		prefix = &sel.Prefix
	}
	var rows []dbsqlc.ListMigrationTenantsRow
	err := m.controlTx(ctx, func(q *dbsqlc.Queries) (err error) {
		rows, err = q.ListMigrationTenants(ctx, dbsqlc.ListMigrationTenantsParams{Statuses: statuses, Ids: ids, IDPrefix: prefix})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: reading the tenant catalog: %w", err)
	}
	if len(ids) > 0 && len(rows) < len(ids) {
		found := make(map[string]bool, len(rows))
		for _, r := range rows {
			found[r.ID] = true
		}
		for _, id := range ids {
			if !found[id] {
				return nil, fmt.Errorf("migrate: Selection.IDs: %w (or not in the selected statuses %v)", &tenancy.NotFoundError{ID: tenancy.ID(id)}, statuses)
			}
		}
	}
	out := make([]*tenancy.Tenant, 0, len(rows))
	for _, r := range rows {
		t := &tenancy.Tenant{ID: tenancy.ID(r.ID), Key: tenancy.Key(r.Key), Status: tenancy.Status(r.Status),
			Schema: r.SchemaName, Cluster: r.Cluster, SchemaVersion: r.SchemaVersion}
		if sel.Match != nil && !sel.Match(t) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// migrationsFor returns the migrations of tenant t: the common ones merged with
// its Extra group's.
func (m *Migrator) migrationsFor(t *tenancy.Tenant) ([]*Migration, error) {
	if m.cfg.Extra == nil {
		return m.base, nil
	}
	group, fsys := m.cfg.Extra(t)
	if fsys == nil {
		return m.base, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms, ok := m.groups[group]; ok {
		return ms, nil
	}
	extra, err := Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("migrate: extra migrations of group %q (tenant %q): %w", group, t.ID, err)
	}
	byV := make(map[int64]*Migration, len(m.base))
	for _, b := range m.base {
		byV[b.Version] = b
	}
	merged := append([]*Migration(nil), m.base...)
	for _, e := range extra {
		if b, ok := byV[e.Version]; ok {
			return nil, fmt.Errorf("migrate: extra migration %s of group %q has the version of common migration %s; versions must not collide (use timestamp versions)", e, group, b)
		}
		merged = append(merged, e)
	}
	sort.Slice(merged, func(i, j int) bool { return merged[i].Version < merged[j].Version })
	m.groups[group] = merged
	return merged, nil
}

// targetFor normalizes the run's target for tenant t with migrations ms and
// says whether t is behind it, judged from the catalog's schema_version.
func targetFor(dir Direction, target int64, t *tenancy.Tenant, ms []*Migration) (norm int64, behind bool) {
	v := t.SchemaVersion
	if dir == Up {
		norm = Latest(ms)
		if target > 0 {
			norm = 0
			for _, mg := range ms {
				if mg.Version <= target {
					norm = mg.Version
				}
			}
		}
		return norm, v < norm
	}
	switch {
	case target == 0:
		// One step: down to the version below the current one.
		for _, mg := range ms {
			if mg.Version < v {
				norm = mg.Version
			}
		}
		return norm, v > 0
	case target < 0:
		return 0, v > 0
	default:
		return target, v > target
	}
}

// plan reads the selection and splits it into the tenants to process and the
// ones already at target.
func (m *Migrator) plan(ctx context.Context, dir Direction, opts *RunOpts) (todo []*work, atTarget []*tenancy.Tenant, err error) {
	ts, err := m.candidates(ctx, &opts.Tenants)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range ts {
		ms, err := m.migrationsFor(t)
		if err != nil {
			return nil, nil, err
		}
		norm, behind := targetFor(dir, opts.Target, t, ms)
		if !behind {
			atTarget = append(atTarget, t)
			continue
		}
		todo = append(todo, &work{t: t, ms: ms, target: norm})
	}
	return todo, atTarget, nil
}

func (o *RunOpts) validate(dir Direction) error {
	if dir == Up && o.Target < 0 {
		return fmt.Errorf("migrate: RunOpts.Target is %d; up targets are 0 (latest) or a version", o.Target)
	}
	if dir == Down && o.Target < -1 {
		return fmt.Errorf("migrate: RunOpts.Target is %d; down targets are 0 (one step), -1 (all the way) or a version", o.Target)
	}
	if o.Canary < 0 || o.ErrorBudget < 0 {
		return fmt.Errorf("migrate: RunOpts.Canary and RunOpts.ErrorBudget must be >= 0")
	}
	for _, id := range o.CanaryIDs {
		if err := id.Validate(); err != nil {
			return fmt.Errorf("migrate: RunOpts.CanaryIDs: %w", err)
		}
	}
	return nil
}

// runState is what the workers of one run share.
type runState struct {
	id    int64
	dir   Direction
	start time.Time

	mu       sync.Mutex
	total    int
	done     int
	ok, fail int
	skipped  int
	phase    string
	stopped  error
	budget   int
}

func (m *Migrator) run(ctx context.Context, dir Direction, opts *RunOpts) (*RunResult, error) {
	if opts == nil {
		opts = &RunOpts{}
	}
	o := *opts
	if err := o.validate(dir); err != nil {
		return nil, err
	}
	var resumed *dbsqlc.MigrationRun
	if o.Resume != 0 {
		run, err := m.getRun(ctx, o.Resume)
		if err != nil {
			return nil, err
		}
		if Direction(run.Direction) != dir {
			return nil, fmt.Errorf("migrate: resuming run %d: it migrated %s, not %s", run.ID, run.Direction, dir)
		}
		if o.Target != 0 && o.Target != run.Target {
			return nil, fmt.Errorf("migrate: resuming run %d: its target is %d, not %d", run.ID, run.Target, o.Target)
		}
		o.Target = run.Target
		if o.Tenants.isZero() && len(run.Selection) > 0 {
			if err := json.Unmarshal(run.Selection, &o.Tenants); err != nil {
				return nil, fmt.Errorf("migrate: resuming run %d: decoding its selection: %w", run.ID, err)
			}
		}
		resumed = &run
	}
	todo, atTarget, err := m.plan(ctx, dir, &o)
	if err != nil {
		return nil, err
	}
	total := len(todo) + len(atTarget)

	rs := &runState{dir: dir, start: time.Now(), total: len(todo), budget: o.ErrorBudget}
	if o.FailFast {
		rs.budget = 1
	}
	sel, err := json.Marshal(o.Tenants)
	if err != nil {
		return nil, err
	}
	err = m.controlTx(ctx, func(q *dbsqlc.Queries) error {
		if resumed != nil {
			r, err := q.ResumeMigrationRun(ctx, dbsqlc.ResumeMigrationRunParams{ID: resumed.ID, Tenants: int32(total)})
			rs.id = r.ID
			return err
		}
		r, err := q.InsertMigrationRun(ctx, dbsqlc.InsertMigrationRunParams{
			Direction: string(dir), Target: o.Target, Actor: tenancy.ActorFromContext(ctx), Selection: sel, Tenants: int32(total),
		})
		rs.id = r.ID
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: recording the run in the ledger: %w", ledgerHint(err))
	}

	results := make(map[tenancy.ID]*TenantResult, len(todo))
	var resMu sync.Mutex
	record := func(r TenantResult) {
		resMu.Lock()
		results[r.Tenant] = &r
		resMu.Unlock()
	}

	// Canary phase first.
	var canary, rest []*work
	if len(o.CanaryIDs) > 0 {
		named := map[tenancy.ID]bool{}
		for _, id := range o.CanaryIDs {
			named[id] = true
		}
		for _, w := range todo {
			if named[w.t.ID] {
				canary = append(canary, w)
			} else {
				rest = append(rest, w)
			}
		}
	} else {
		n := min(o.Canary, len(todo))
		canary, rest = todo[:n], todo[n:]
	}
	if len(canary) > 0 {
		rs.phase = "canary"
		m.fanOut(ctx, rs, canary, record)
		rs.mu.Lock()
		if rs.fail > 0 && rs.stopped == nil {
			rs.stopped = ErrCanaryFailed
		}
		rs.mu.Unlock()
	}
	if rs.stopped == nil {
		rs.phase = "main"
		m.fanOut(ctx, rs, rest, record)
	}

	out := &RunResult{RunID: rs.id, Direction: dir, Duration: time.Since(rs.start), Stopped: rs.stopped}
	for _, t := range atTarget {
		out.Tenants = append(out.Tenants, TenantResult{Tenant: t.ID, Schema: t.Schema, Cluster: t.Cluster, State: Skipped, From: t.SchemaVersion, To: t.SchemaVersion})
	}
	for _, w := range todo {
		if r, ok := results[w.t.ID]; ok {
			out.Tenants = append(out.Tenants, *r)
		} else {
			out.Tenants = append(out.Tenants, TenantResult{Tenant: w.t.ID, Schema: w.t.Schema, Cluster: w.t.Cluster, State: NotStarted, From: w.t.SchemaVersion, To: w.t.SchemaVersion})
		}
	}
	sort.Slice(out.Tenants, func(i, j int) bool { return out.Tenants[i].Tenant < out.Tenants[j].Tenant })
	for _, r := range out.Tenants {
		switch r.State {
		case Succeeded:
			out.Succeeded++
		case Failed:
			out.Failed++
		case Skipped:
			out.Skipped++
		case NotStarted:
			out.NotStarted++
		}
	}
	state, note := "succeeded", ""
	switch {
	case errors.Is(rs.stopped, context.Canceled) || errors.Is(rs.stopped, context.DeadlineExceeded):
		state, note = "interrupted", rs.stopped.Error()
	case rs.stopped != nil:
		state, note = "stopped", rs.stopped.Error()
	case out.Failed > 0:
		state = "failed"
	}
	// Record the end even when ctx is done: an interrupted run must say so.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ferr := m.controlTx(fctx, func(q *dbsqlc.Queries) error {
		return q.FinishMigrationRun(fctx, dbsqlc.FinishMigrationRunParams{
			ID: rs.id, State: state, Succeeded: int32(out.Succeeded), Failed: int32(out.Failed),
			Skipped: int32(out.Skipped), NotStarted: int32(out.NotStarted), Note: note,
		})
	})
	if ferr != nil {
		return out, fmt.Errorf("migrate: run %d: recording its end in the ledger: %w", rs.id, ferr)
	}
	if out.Failed > 0 || out.NotStarted > 0 {
		return out, newPartialError(out)
	}
	return out, nil
}

// fanOut processes ws with the Migrator's parallelism until done or stopped.
func (m *Migrator) fanOut(ctx context.Context, rs *runState, ws []*work, record func(TenantResult)) {
	next := make(chan *work)
	var wg sync.WaitGroup
	for range min(m.par, len(ws)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range next {
				rs.mu.Lock()
				stopped := rs.stopped
				rs.mu.Unlock()
				if stopped != nil || ctx.Err() != nil {
					continue // left NotStarted
				}
				r := m.migrateTenant(ctx, rs, w)
				record(r)
				m.progress(rs, &r)
			}
		}()
	}
feed:
	for _, w := range ws {
		rs.mu.Lock()
		stopped := rs.stopped
		rs.mu.Unlock()
		if stopped != nil {
			break
		}
		select {
		case next <- w:
		case <-ctx.Done():
			rs.mu.Lock()
			if rs.stopped == nil {
				rs.stopped = ctx.Err()
			}
			rs.mu.Unlock()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		rs.mu.Lock()
		if rs.stopped == nil {
			rs.stopped = ctx.Err()
		}
		rs.mu.Unlock()
	}
}

// progress counts r and reports it.
func (m *Migrator) progress(rs *runState, r *TenantResult) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.done++
	switch r.State {
	case Succeeded:
		rs.ok++
	case Failed:
		rs.fail++
		if rs.budget > 0 && rs.fail >= rs.budget && rs.stopped == nil {
			rs.stopped = ErrBudgetExhausted
		}
	case Skipped:
		rs.skipped++
	}
	if m.cfg.Progress == nil {
		return
	}
	el := time.Since(rs.start)
	p := Progress{RunID: rs.id, Direction: rs.dir, Phase: rs.phase, Total: rs.total, Done: rs.done,
		Succeeded: rs.ok, Failed: rs.fail, Skipped: rs.skipped, Remaining: rs.total - rs.done, Elapsed: el, Last: r}
	if secs := el.Seconds(); secs > 0 {
		p.Rate = float64(rs.done) / secs
		if p.Rate > 0 {
			p.ETA = time.Duration(float64(p.Remaining) / p.Rate * float64(time.Second))
		}
	}
	m.cfg.Progress(p)
}

// Progress is one progress event of a run, sent to Config.Progress after
// every tenant.
type Progress struct {
	RunID     int64
	Direction Direction
	// Phase is "canary" or "main".
	Phase string
	// Total is how many tenants the run has to process (tenants already at
	// target are not counted); Done of them are finished.
	Total, Done                int
	Succeeded, Failed, Skipped int
	Remaining                  int
	Elapsed                    time.Duration
	// Rate is tenants per second so far; ETA the time left at that rate.
	Rate float64
	ETA  time.Duration
	// Last is the tenant just finished.
	Last *TenantResult
}

// controlTx runs fn in a transaction on the control schema.
func (m *Migrator) controlTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	tx, err := m.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + m.ctlSQL})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(dbsqlc.New(tx)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// ledgerHint explains the usual cause of a missing ledger.
func ledgerHint(err error) error {
	if sqlState(err) == "42P01" {
		return fmt.Errorf("%w (the control schema has no migration ledger: run `bulkhead init` or provision.Init first)", err)
	}
	return err
}
