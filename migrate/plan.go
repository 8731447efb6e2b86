package migrate

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// planUp is the per-schema planning that ApplyTx and the fan-out share: it
// verifies the checksums of the applied migrations of ms and returns the ones
// to apply, in order, up to target, and the schema's current version among ms.
// A migration below the current version that is not applied is an
// out-of-order error.
func planUp(schema string, ms []*Migration, applied map[int64]string, target int64) (pending []*Migration, from int64, err error) {
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return nil, 0, &ChecksumError{Schema: schema, Version: m.Version, Name: m.Name, Applied: sum, OnDisk: m.Checksum}
			}
			from = m.Version
		}
	}
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok || m.Version > target {
			continue
		}
		if m.Version < from {
			return nil, 0, &MigrationError{Schema: schema, Version: m.Version, Name: m.Name,
				Err: fmt.Errorf("version %d is missing but %d is applied (out-of-order migration)", m.Version, from)}
		}
		pending = append(pending, m)
	}
	return pending, from, nil
}

// planDownStep verifies the checksums of the applied migrations and returns
// the next one to revert to get down to target, or nil.
func planDownStep(schema string, ms []*Migration, applied map[int64]string, target int64) (*Migration, error) {
	byV := make(map[int64]*Migration, len(ms))
	for _, m := range ms {
		byV[m.Version] = m
		if sum, ok := applied[m.Version]; ok && sum != m.Checksum {
			return nil, &ChecksumError{Schema: schema, Version: m.Version, Name: m.Name, Applied: sum, OnDisk: m.Checksum}
		}
	}
	var top int64
	for v := range applied {
		top = max(top, v)
	}
	if top <= target {
		return nil, nil
	}
	m, ok := byV[top]
	if !ok {
		return nil, &MigrationError{Schema: schema, Version: top, Direction: Down,
			Err: fmt.Errorf("version %d is applied but no migration file has it", top)}
	}
	if m.Down == "" {
		return nil, &MigrationError{Schema: schema, Version: m.Version, Name: m.Name, Direction: Down,
			Err: fmt.Errorf("no down file (%s.down.sql)", m)}
	}
	return m, nil
}

// PlanResult says what a run would do, from the catalog alone (no lock, no
// change).
type PlanResult struct {
	Direction Direction
	// Tenants lists the tenants behind their target, ordered by ID.
	Tenants []TenantPlan
	// AtTarget is how many selected tenants are already at their target.
	AtTarget int
}

// TenantPlan is what a run would do to one tenant.
type TenantPlan struct {
	Tenant tenancy.ID
	Schema string
	// Cluster is the tenant's cluster, as the catalog records it.
	Cluster string
	Status  tenancy.Status
	// From is the catalog's version, To the target.
	From, To int64
	// Versions are the migrations to apply (up) or revert (down), in order.
	Versions []int64
}

// Plan says what Up (dir Up) or Down (dir Down) would do with opts, reading
// only the catalog: the tenants behind their target and the migrations each
// would get. It takes no lock and changes nothing.
func (m *Migrator) Plan(ctx context.Context, dir Direction, opts *RunOpts) (*PlanResult, error) {
	if opts == nil {
		opts = &RunOpts{}
	}
	if dir != Up && dir != Down {
		return nil, fmt.Errorf("migrate: Plan: direction %q is neither up nor down", dir)
	}
	if err := opts.validate(dir); err != nil {
		return nil, err
	}
	todo, atTarget, err := m.plan(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	out := &PlanResult{Direction: dir, AtTarget: len(atTarget)}
	for _, w := range todo {
		tp := TenantPlan{Tenant: w.t.ID, Schema: w.t.Schema, Cluster: w.t.Cluster, Status: w.t.Status, From: w.t.SchemaVersion, To: w.target}
		if dir == Up {
			for _, mg := range w.ms {
				if mg.Version > w.t.SchemaVersion && mg.Version <= w.target {
					tp.Versions = append(tp.Versions, mg.Version)
				}
			}
		} else {
			for i := len(w.ms) - 1; i >= 0; i-- {
				if v := w.ms[i].Version; v <= w.t.SchemaVersion && v > w.target {
					tp.Versions = append(tp.Versions, v)
				}
			}
		}
		out.Tenants = append(out.Tenants, tp)
	}
	return out, nil
}

// StatusResult is where the selected tenants stand, from the catalog and the
// ledger.
type StatusResult struct {
	// Latest is the highest common migration version.
	Latest int64
	// Tenants are ordered by ID.
	Tenants []TenantStatus
	// Counts of Tenants by TenantStatus.State.
	UpToDate, Behind, Ahead int
}

// TenantStatus is one tenant's migration status.
type TenantStatus struct {
	Tenant tenancy.ID
	Schema string
	// Cluster is the tenant's cluster, as the catalog records it.
	Cluster string
	Status  tenancy.Status
	// Version is the catalog's schema_version; Latest the tenant's highest
	// migration (common and Extra); Pending how many migrations it lacks.
	Version, Latest int64
	Pending         int
	// State is "up-to-date", "behind" or "ahead" (a version no file has).
	State string
	// Last is the tenant's latest ledger entry, or nil.
	Last *LedgerEntry
}

// Status reports, for the selected tenants (nil: all), their version against
// the latest migration and their last ledger entry. Two queries, no lock.
func (m *Migrator) Status(ctx context.Context, sel *Selection) (*StatusResult, error) {
	if sel == nil {
		sel = &Selection{}
	}
	ts, err := m.candidates(ctx, sel)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = string(t.ID)
	}
	var last []dbsqlc.MigrationResult
	if err := m.controlTx(ctx, func(q *dbsqlc.Queries) (err error) {
		last, err = q.LatestMigrationResults(ctx, ids)
		return err
	}); err != nil {
		return nil, fmt.Errorf("migrate: reading the ledger: %w", ledgerHint(err))
	}
	byID := make(map[string]*dbsqlc.MigrationResult, len(last))
	for i := range last {
		byID[last[i].TenantID] = &last[i]
	}
	out := &StatusResult{Latest: Latest(m.base)}
	for _, t := range ts {
		ms, err := m.migrationsFor(t)
		if err != nil {
			return nil, err
		}
		st := TenantStatus{Tenant: t.ID, Schema: t.Schema, Cluster: t.Cluster, Status: t.Status, Version: t.SchemaVersion, Latest: Latest(ms), State: "up-to-date"}
		known := t.SchemaVersion == 0
		for _, mg := range ms {
			if mg.Version > t.SchemaVersion {
				st.Pending++
			}
			known = known || mg.Version == t.SchemaVersion
		}
		switch {
		case !known || t.SchemaVersion > st.Latest:
			st.State = "ahead"
			out.Ahead++
		case st.Pending > 0:
			st.State = "behind"
			out.Behind++
		default:
			out.UpToDate++
		}
		if r, ok := byID[string(t.ID)]; ok {
			e := ledgerEntry(*r)
			st.Last = &e
		}
		out.Tenants = append(out.Tenants, st)
	}
	return out, nil
}

// Problem is one inconsistency Validate found.
type Problem struct {
	Tenant tenancy.ID
	Schema string
	// Kind is "checksum" (an applied file changed), "unknown" (a version is
	// applied that no file has), "gap" (a version below the current one is not
	// applied), "catalog" (the catalog's schema_version differs from the
	// schema's) or "read" (the version table could not be read).
	Kind   string
	Detail string
	// Err is the *ChecksumError for Kind "checksum", the read error for
	// "read", else nil.
	Err error
}

// ValidateResult lists what Validate found.
type ValidateResult struct {
	Checked  int
	Problems []Problem
}

// Validate reads the version table of every selected tenant (nil: all), with
// the Migrator's parallelism and without locks, and reports checksum drift,
// unknown or missing versions and catalog mismatches. It changes nothing.
// Unlike Up, which only looks at tenants behind their target, it checks every
// tenant.
func (m *Migrator) Validate(ctx context.Context, sel *Selection) (*ValidateResult, error) {
	if sel == nil {
		sel = &Selection{}
	}
	ts, err := m.candidates(ctx, sel)
	if err != nil {
		return nil, err
	}
	out := &ValidateResult{Checked: len(ts)}
	var mu sync.Mutex
	add := func(p Problem) { mu.Lock(); out.Problems = append(out.Problems, p); mu.Unlock() }
	next := make(chan *tenancy.Tenant)
	var wg sync.WaitGroup
	for range min(m.par, max(1, len(ts))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				m.validateTenant(ctx, t, add)
			}
		}()
	}
	for _, t := range ts {
		if ctx.Err() != nil {
			break
		}
		next <- t
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out.Problems, func(i, j int) bool { return out.Problems[i].Tenant < out.Problems[j].Tenant })
	return out, nil
}

func (m *Migrator) validateTenant(ctx context.Context, t *tenancy.Tenant, add func(Problem)) {
	p := Problem{Tenant: t.ID, Schema: t.Schema}
	ms, err := m.migrationsFor(t)
	if err != nil {
		p.Kind, p.Detail, p.Err = "read", err.Error(), err
		add(p)
		return
	}
	pool, _, err := m.clusterPool(t)
	if err != nil {
		p.Kind, p.Detail, p.Err = "read", err.Error(), err
		add(p)
		return
	}
	rows, err := pool.Query(ctx, "SELECT version, checksum FROM "+pgx.Identifier{t.Schema, VersionTable}.Sanitize())
	applied := map[int64]string{}
	if err == nil {
		var v int64
		var sum string
		_, err = pgx.ForEachRow(rows, []any{&v, &sum}, func() error { applied[v] = sum; return nil })
	}
	if err != nil {
		p.Kind, p.Detail, p.Err = "read", err.Error(), err
		add(p)
		return
	}
	byV := make(map[int64]*Migration, len(ms))
	for _, mg := range ms {
		byV[mg.Version] = mg
	}
	var top int64
	for v, sum := range applied {
		top = max(top, v)
		mg, ok := byV[v]
		if !ok {
			q := p
			q.Kind, q.Detail = "unknown", fmt.Sprintf("version %d is applied but no migration file has it", v)
			add(q)
			continue
		}
		if sum != mg.Checksum {
			q := p
			q.Err = &ChecksumError{Schema: t.Schema, Version: v, Name: mg.Name, Applied: sum, OnDisk: mg.Checksum}
			q.Kind, q.Detail = "checksum", q.Err.Error()
			add(q)
		}
	}
	for _, mg := range ms {
		if _, ok := applied[mg.Version]; !ok && mg.Version < top {
			q := p
			q.Kind, q.Detail = "gap", fmt.Sprintf("%s is not applied but version %d is (out-of-order migration)", mg, top)
			add(q)
		}
	}
	if top != t.SchemaVersion {
		q := p
		q.Kind, q.Detail = "catalog", fmt.Sprintf("the catalog says version %d, the schema has %d", t.SchemaVersion, top)
		add(q)
	}
}
