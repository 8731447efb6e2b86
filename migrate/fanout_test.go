package migrate_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// TestFanOutManyTenants migrates 200 tenants in parallel, then checks that a
// second run finds nothing to do.
func TestFanOutManyTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 200, "many")
	ctx := ctxT(t)
	var events []migrate.Progress
	var mu sync.Mutex
	m := e.migrator(t, with(v2...), &migrate.Config{Progress: func(p migrate.Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}})
	require.Equal(t, 8, m.Parallelism())

	plan, err := m.Plan(ctx, migrate.Up, nil)
	require.NoError(t, err)
	require.Len(t, plan.Tenants, 200)
	require.Equal(t, []int64{2}, plan.Tenants[0].Versions)
	st, err := m.Status(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 200, st.Behind)

	res, err := m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.Succeeded)
	require.Zero(t, migrate.Replans(m), "an accurate catalog needs no re-plan: one round trip per step")
	require.Len(t, res.Tenants, 200)
	for _, r := range res.Tenants {
		require.Equal(t, migrate.Succeeded, r.State, r.Tenant)
		require.Equal(t, int64(1), r.From)
		require.Equal(t, int64(2), r.To)
		require.Len(t, r.Steps, 1)
	}
	for id, v := range e.versions(t) {
		require.Equal(t, int64(2), v, id)
	}
	require.Equal(t, []int64{1, 2}, e.applied(t, e.tenants[17]))
	require.True(t, e.hasColumn(t, e.tenants[199], "tag"))

	require.Len(t, events, 200)
	last := events[len(events)-1]
	require.Equal(t, 200, last.Done)
	require.Equal(t, 0, last.Remaining)
	require.Equal(t, 200, last.Succeeded)
	require.Greater(t, last.Rate, 0.0)

	led, err := m.Ledger(ctx, res.RunID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", led.State)
	require.Equal(t, 200, led.Succeeded)
	require.Len(t, led.Results, 200)
	for _, r := range led.Results {
		require.Equal(t, "succeeded", r.State)
		require.Equal(t, []int64{2}, r.Versions)
		require.Equal(t, 1, r.Attempts)
	}

	// Everyone is at target: the second run skips all from the catalog.
	again, err := m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 200, again.Skipped)
	require.Zero(t, again.Succeeded)
	led, err = m.Ledger(ctx, again.RunID)
	require.NoError(t, err)
	require.Empty(t, led.Results)
	st, err = m.Status(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 200, st.UpToDate)
	require.Equal(t, res.RunID, st.Tenants[0].Last.RunID)
}

// TestDataDependentFailure: a NOT NULL that some tenants' rows violate leaves
// those tenants at version 1, the rest at 2, and the ledger says which and why.
func TestDataDependentFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 12, "data")
	ctx := ctxT(t)
	bad := map[tenancy.ID]bool{}
	for i, id := range e.tenants {
		note := "'ok'"
		if i%4 == 1 {
			note = "NULL"
			bad[id] = true
		}
		e.exec(t, id, "INSERT INTO items (note) VALUES ("+note+")")
	}
	m := e.migrator(t, with("0002_note_required.up.sql", "ALTER TABLE items ALTER COLUMN note SET NOT NULL;"), nil)
	res, err := m.Up(ctx, nil)
	var pe *migrate.PartialError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Failed, len(bad))
	require.Len(t, pe.Succeeded, len(e.tenants)-len(bad))
	var me *migrate.MigrationError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "23502", me.SQLState())
	require.Equal(t, len(bad), res.Failed)

	vs := e.versions(t)
	for _, id := range e.tenants {
		want := int64(2)
		if bad[id] {
			want = 1
		}
		require.Equal(t, want, vs[id], id)
		require.Equal(t, want, int64(len(e.applied(t, id))), id)
	}
	led, err := m.Ledger(ctx, res.RunID)
	require.NoError(t, err)
	require.Equal(t, "failed", led.State)
	require.Len(t, led.Results, len(e.tenants))
	for _, r := range led.Results {
		if bad[r.Tenant] {
			require.Equal(t, "failed", r.State)
			require.Equal(t, "23502", r.SQLState)
			require.Contains(t, r.Error, "0002_note_required")
			require.Equal(t, int64(1), r.To)
		} else {
			require.Equal(t, "succeeded", r.State)
			require.Empty(t, r.SQLState)
		}
	}

	// Fix the data; the next run retries exactly the failed tenants.
	for id := range bad {
		e.exec(t, id, "UPDATE items SET note = 'fixed' WHERE note IS NULL")
	}
	res, err = m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, len(bad), res.Succeeded)
	require.Equal(t, len(e.tenants)-len(bad), res.Skipped)
}

func TestCanaryAndErrorBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 10, "canary")
	ctx := ctxT(t)
	broken := with("0002_broken.up.sql", "ALTER TABLE nowhere ADD COLUMN x int;")

	m := e.migrator(t, broken, nil)
	res, err := m.Up(ctx, &migrate.RunOpts{CanaryIDs: []tenancy.ID{e.tenants[7]}})
	require.ErrorIs(t, err, migrate.ErrCanaryFailed)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 9, res.NotStarted)
	require.ErrorContains(t, err, "42P01")
	led, err := m.Ledger(ctx, res.RunID)
	require.NoError(t, err)
	require.Equal(t, "stopped", led.State)
	require.Equal(t, 9, led.NotStarted)

	m = e.migrator(t, broken, &migrate.Config{Parallelism: 1})
	res, err = m.Up(ctx, &migrate.RunOpts{ErrorBudget: 3})
	require.ErrorIs(t, err, migrate.ErrBudgetExhausted)
	require.Equal(t, 3, res.Failed)
	require.Equal(t, 7, res.NotStarted)

	res, err = m.Up(ctx, &migrate.RunOpts{FailFast: true, Tenants: migrate.Selection{Prefix: "canary-000"}})
	require.ErrorIs(t, err, migrate.ErrBudgetExhausted)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 9, res.NotStarted)

	// A passing canary lets the rest run; a named list and a predicate select.
	ok := e.migrator(t, with(v2...), nil)
	res, err = ok.Up(ctx, &migrate.RunOpts{Canary: 2, Tenants: migrate.Selection{
		IDs:   e.tenants[:6],
		Match: func(t *tenancy.Tenant) bool { return t.ID != "canary-0005" },
	}})
	require.NoError(t, err)
	require.Equal(t, 5, res.Succeeded)
	require.Len(t, res.Tenants, 5)
	vs := e.versions(t)
	require.Equal(t, int64(1), vs["canary-0005"])
	require.Equal(t, int64(2), vs["canary-0004"])
}

// TestResumeAfterInterrupt kills a run while a tenant's migration is running
// (after its SQL started, before its commit), then resumes the run.
func TestResumeAfterInterrupt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 30, "resume")
	ctx, cancel := context.WithCancel(ctxT(t))
	// The victim's migration sleeps (its data says so): the "crash" lands
	// while its transaction is open, after its DDL ran.
	v := e.tenants[3]
	e.exec(t, v, "INSERT INTO items (note) VALUES ('slow')")
	slow := with("0002_items_tag.up.sql", `ALTER TABLE items ADD COLUMN tag text;
SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM items WHERE note = 'slow') THEN 2 ELSE 0.05 END);`)
	m := e.migrator(t, slow, &migrate.Config{Parallelism: 3})
	migrate.SetBeforeStep(m, func(id tenancy.ID, _ int64) {
		if id == v {
			time.AfterFunc(200*time.Millisecond, cancel)
		}
	})
	res, err := m.Up(ctx, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, res.Succeeded, 30)
	require.Positive(t, res.NotStarted)
	require.Equal(t, int64(1), e.versions(t)[v], "the interrupted tenant keeps its old version")
	require.False(t, e.hasColumn(t, v, "tag"), "the interrupted migration rolled back")
	led, err := m.Ledger(context.Background(), res.RunID)
	require.NoError(t, err)
	require.Equal(t, "interrupted", led.State)

	migrate.SetBeforeStep(m, nil)
	again, err := m.Up(ctxT(t), &migrate.RunOpts{Resume: res.RunID})
	require.NoError(t, err)
	require.Equal(t, res.RunID, again.RunID)
	if again.Succeeded != 30-res.Succeeded {
		for i, r := range res.Tenants {
			t.Logf("%s first=%s %v again=%s", r.Tenant, r.State, r.Err, again.Tenants[i].State)
		}
	}
	require.Equal(t, 30-res.Succeeded, again.Succeeded)
	require.Equal(t, res.Succeeded, again.Skipped)
	for id, ver := range e.versions(t) {
		require.Equal(t, int64(2), ver, id)
		require.Equal(t, []int64{1, 2}, e.applied(t, id))
	}
	led, err = m.Ledger(ctxT(t), res.RunID)
	require.NoError(t, err)
	require.Equal(t, "succeeded", led.State)
	require.Equal(t, 2, led.Attempts)
	require.Len(t, led.Results, 30)
	for _, r := range led.Results {
		require.Equal(t, "succeeded", r.State, r.Tenant)
	}
}

func TestDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, "down")
	ctx := ctxT(t)
	v3 := []string{"0003_counter_max.up.sql", "ALTER TABLE counter ADD COLUMN max int;", "0003_counter_max.down.sql", "ALTER TABLE counter DROP COLUMN max;"}
	m := e.migrator(t, with(append(append([]string{}, v2...), v3...)...), nil)
	_, err := m.Up(ctx, nil)
	require.NoError(t, err)

	plan, err := m.Plan(ctx, migrate.Down, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{3}, plan.Tenants[0].Versions)
	res, err := m.Down(ctx, nil) // one step
	require.NoError(t, err)
	require.Equal(t, 6, res.Succeeded)
	require.Equal(t, []int64{1, 2}, e.applied(t, e.tenants[0]))
	require.Equal(t, int64(2), e.versions(t)[e.tenants[0]])

	res, err = m.Down(ctx, &migrate.RunOpts{Target: -1, Tenants: migrate.Selection{IDs: e.tenants[:2]}})
	require.NoError(t, err)
	require.Equal(t, 2, res.Succeeded)
	require.Equal(t, []int64{2, 1}, []int64{res.Tenants[0].Steps[0].Version, res.Tenants[0].Steps[1].Version})
	require.Empty(t, e.applied(t, e.tenants[0]))
	require.Equal(t, int64(0), e.versions(t)[e.tenants[0]])

	// Back up; a version without a down file cannot be reverted.
	noDown := e.migrator(t, with("0002_x.up.sql", "CREATE TABLE x (id int);"), nil)
	_, err = noDown.Up(ctx, &migrate.RunOpts{Tenants: migrate.Selection{IDs: e.tenants[:1]}})
	require.NoError(t, err)
	_, err = noDown.Down(ctx, &migrate.RunOpts{Tenants: migrate.Selection{IDs: e.tenants[:1]}})
	var me *migrate.MigrationError
	require.ErrorAs(t, err, &me)
	require.ErrorContains(t, err, "no down file")
}

func TestChecksumDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, "drift")
	ctx := ctxT(t)
	_, err := e.migrator(t, with(v2...), nil).Up(ctx, nil)
	require.NoError(t, err)

	edited := with("0002_items_tag.up.sql", "ALTER TABLE items ADD COLUMN tag text; -- edited after it was applied",
		"0003_more.up.sql", "CREATE TABLE more (id int);")
	m := e.migrator(t, edited, nil)
	res, err := m.Up(ctx, nil)
	require.ErrorIs(t, err, migrate.ErrChecksum)
	require.Equal(t, 4, res.Failed)
	var ce *migrate.ChecksumError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, int64(2), ce.Version)
	for id, v := range e.versions(t) {
		require.Equal(t, int64(2), v, "nothing re-run or applied past the drift: %s", id)
	}
	val, err := m.Validate(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 4, val.Checked)
	kinds := map[string]int{}
	for _, p := range val.Problems {
		kinds[p.Kind]++
	}
	require.Equal(t, 4, kinds["checksum"], "%+v", val.Problems)
}

// TestConcurrentMigrators starts two migrators at once; a non-idempotent
// migration shows that nothing is applied twice.
func TestConcurrentMigrators(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 40, "twice")
	ctx := ctxT(t)
	fsys := with("0002_bump.up.sql", "UPDATE counter SET n = n + 1;", "0003_bump.up.sql", "UPDATE counter SET n = n + 10;")
	a := e.migrator(t, fsys, &migrate.Config{Parallelism: 4})
	b := e.migrator(t, fsys, &migrate.Config{Parallelism: 4})
	var wg sync.WaitGroup
	var ra, rb *migrate.RunResult
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); ra, ea = a.Up(ctx, nil) }()
	go func() { defer wg.Done(); rb, eb = b.Up(ctx, nil) }()
	wg.Wait()
	require.NoError(t, ea)
	require.NoError(t, eb)
	steps := 0
	for _, r := range append(append([]migrate.TenantResult{}, ra.Tenants...), rb.Tenants...) {
		steps += len(r.Steps)
	}
	require.Equal(t, 80, steps, "each of 2 versions applied exactly once per tenant")
	for _, id := range e.tenants {
		var n int
		require.NoError(t, e.super.QueryRow(ctx, "SELECT n FROM "+e.schema(t, id)+".counter").Scan(&n))
		require.Equal(t, 11, n, id)
		require.Equal(t, []int64{1, 2, 3}, e.applied(t, id))
	}
	for _, v := range e.versions(t) {
		require.Equal(t, int64(3), v)
	}
}

func TestNoTransactionMigration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, "conc")
	ctx := ctxT(t)
	fsys := with(
		"0002_note_index.up.sql", "-- bulkhead:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_note ON items (note);",
		"0002_note_index.down.sql", "-- bulkhead:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS items_note;",
	)
	m := e.migrator(t, fsys, &migrate.Config{Parallelism: 2})
	require.True(t, m.Migrations()[1].NoTransaction)
	res, err := m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 5, res.Succeeded)
	indexValid := func(id tenancy.ID) (exists, valid bool) {
		err := e.super.QueryRow(ctx, `SELECT true, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'items_note'`, e.schema(t, id)).Scan(&exists, &valid)
		if err != nil && strings.Contains(err.Error(), "no rows") {
			return false, false
		}
		require.NoError(t, err)
		return
	}
	for _, id := range e.tenants {
		ex, valid := indexValid(id)
		require.True(t, ex && valid, id)
		require.Equal(t, []int64{1, 2}, e.applied(t, id))
	}
	// The admin pool's connections carry no session state or lock afterwards.
	var role, path string
	var locks int
	require.NoError(t, e.admin.QueryRow(ctx, "SELECT current_user, current_setting('search_path'), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))").Scan(&role, &path, &locks))
	require.Equal(t, e.d.DB.AdminRole, role)
	require.NotContains(t, path, "_t_")
	require.Zero(t, locks)

	res, err = m.Down(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 5, res.Succeeded)
	ex, _ := indexValid(e.tenants[0])
	require.False(t, ex)
}

func TestExtraMigrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, "std")
	vip := e.create(t, 3, "vip")
	ctx := ctxT(t)
	common := with("0003_common.up.sql", "ALTER TABLE items ADD COLUMN common int;")
	extra := files("0002_vip_only.up.sql", "CREATE TABLE vip_perks (id int);")
	m := e.migrator(t, common, &migrate.Config{Extra: func(t *tenancy.Tenant) (string, fs.FS) {
		if strings.HasPrefix(string(t.ID), "vip-") {
			return "vip", extra
		}
		return "", nil
	}})
	res, err := m.Up(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 9, res.Succeeded)
	require.Equal(t, []int64{1, 2, 3}, e.applied(t, vip[0]))
	require.Equal(t, []int64{1, 3}, e.applied(t, e.tenants[0]))
	st, err := m.Status(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 9, st.UpToDate)

	clash := e.migrator(t, common, &migrate.Config{Extra: func(*tenancy.Tenant) (string, fs.FS) {
		return "clash", files("0003_other.up.sql", "SELECT 1;")
	}})
	_, err = clash.Up(ctx, nil)
	require.ErrorContains(t, err, "must not collide")
}

// TestLockTimeout: a tenant whose table is locked by a long transaction fails
// with lock_not_available after LockTimeout; the others are migrated.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, "locked")
	ctx := ctxT(t)
	tx, err := e.super.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, "LOCK TABLE "+e.schema(t, e.tenants[2])+".items IN ACCESS SHARE MODE")
	require.NoError(t, err)

	m := e.migrator(t, with(v2...), &migrate.Config{LockTimeout: 200 * time.Millisecond})
	res, err := m.Up(ctx, nil)
	var pe *migrate.PartialError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Failed, 1)
	require.Contains(t, pe.Failed, e.tenants[2])
	require.Equal(t, "55P03", res.Tenants[2].SQLState)
	require.Equal(t, 3, res.Succeeded)
	require.NoError(t, tx.Rollback(ctx))
	_, err = m.Up(ctx, nil)
	require.NoError(t, err)
}

func TestRunNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, "none")
	m := e.migrator(t, with(v2...), nil)
	_, err := m.Ledger(ctxT(t), 0)
	require.True(t, errors.Is(err, migrate.ErrRunNotFound), err)
	_, err = m.Up(ctxT(t), &migrate.RunOpts{Resume: 12345})
	require.ErrorIs(t, err, migrate.ErrRunNotFound)
}
