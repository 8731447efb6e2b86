package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func init() {
	register("migrate", command{summary: "plan, apply, revert or inspect tenant migrations across all tenants (plan|up|down|status|validate)", run: runMigrate})
}

const migrateUsage = `usage: bulkhead migrate <plan|up|down|status|validate> -dir DIR [flags]

  plan      list the tenants behind and what up (or down, with -down) would apply; changes nothing
  up        apply pending migrations to every selected tenant (default: to the latest)
  down      revert migrations (default: each tenant's latest one; -target N or -target -1 for all)
  status    each tenant's version against the latest migration, and its last ledger entry
  validate  read every tenant's version table: changed files, unknown or missing versions

Migrations are NNNN_name.up.sql / NNNN_name.down.sql files in -dir.
Exit status: 0 when every tenant succeeded or was already at target, 1 when any failed or was
not reached (the summary says which and how to retry), 2 for bad usage.

flags:
`

// migrateFlags are the flags of every migrate subcommand.
type migrateFlags struct {
	adminFlags
	dir, ids, idPrefix, statuses, canaryIDs string
	target                                  int64
	parallel, canary, budget                int
	failFast, down, all                     bool
	resume                                  string
	lockTimeout                             time.Duration
	primary                                 string
	clusters                                clusterDSNs
}

// clusterDSNs is the repeatable -cluster name=DSN flag.
type clusterDSNs map[string]string

func (c *clusterDSNs) String() string {
	names := make([]string, 0, len(*c))
	for n := range *c {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (c *clusterDSNs) Set(v string) error {
	name, dsn, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(dsn) == "" {
		return fmt.Errorf("want name=DSN (the admin DSN of another cluster), got %q", v)
	}
	if *c == nil {
		*c = clusterDSNs{}
	}
	if _, dup := (*c)[name]; dup {
		return fmt.Errorf("cluster %q given twice", name)
	}
	(*c)[name] = dsn
	return nil
}

func (f *migrateFlags) register(fs *flag.FlagSet) {
	f.adminFlags.register(fs)
	fs.StringVar(&f.dir, "dir", "", "directory of the tenant migrations (NNNN_name.up.sql); required")
	fs.StringVar(&f.ids, "tenants", "", "comma-separated tenant IDs to migrate (default: all)")
	fs.StringVar(&f.idPrefix, "id-prefix", "", "only tenants whose ID starts with this")
	fs.StringVar(&f.statuses, "status", "", "comma-separated tenant statuses (default: active,suspended,archived)")
	fs.Int64Var(&f.target, "target", 0, "version to migrate to (up: 0 = latest; down: 0 = one step, -1 = all the way)")
	fs.IntVar(&f.parallel, "parallel", 0, "tenants migrated at once (default: sized for the connection pool, at most 8)")
	fs.IntVar(&f.canary, "canary", 0, "migrate this many tenants first; stop if any of them fails")
	fs.StringVar(&f.canaryIDs, "canary-tenants", "", "comma-separated canary tenant IDs (instead of -canary N)")
	fs.IntVar(&f.budget, "error-budget", 0, "stop starting tenants after this many failures (default: no limit)")
	fs.BoolVar(&f.failFast, "fail-fast", false, "stop at the first failure")
	fs.StringVar(&f.resume, "resume", "", "continue an interrupted run: its id, or 'last'")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", migrate.DefaultLockTimeout, "longest wait for a table lock before a tenant fails (it is retried by the next run)")
	fs.StringVar(&f.primary, "primary-cluster", "default", "name of the cluster of -dsn, which holds the catalog (provision.Config.Cluster)")
	fs.Var(&f.clusters, "cluster", "name=DSN: admin DSN of another cluster whose tenants to migrate there (repeatable; provision.Config.Clusters)")
	fs.BoolVar(&f.down, "down", false, "plan: show what down would revert")
	fs.BoolVar(&f.all, "all", false, "plan, status: list every tenant, not only those behind or failed")
}

func (f *migrateFlags) selection() (migrate.Selection, error) {
	sel := migrate.Selection{Prefix: f.idPrefix}
	for _, id := range splitList(f.ids) {
		tid, err := tenancy.ParseID(id)
		if err != nil {
			return sel, fmt.Errorf("-tenants: %w", err)
		}
		sel.IDs = append(sel.IDs, tid)
	}
	for _, s := range splitList(f.statuses) {
		st := tenancy.Status(s)
		if !st.Valid() {
			return sel, fmt.Errorf("-status: %q is not a tenant status (provisioning, active, suspended, archived, deleted)", s)
		}
		sel.Statuses = append(sel.Statuses, st)
	}
	return sel, nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, migrateUsage)
		fmt.Fprintln(stderr, "\nbulkhead migrate: name a subcommand: plan, up, down, status or validate")
		return 2
	}
	sub := args[0]
	switch sub {
	case "plan", "up", "down", "status", "validate":
	default:
		fmt.Fprintf(stderr, "bulkhead migrate: unknown subcommand %q; use plan, up, down, status or validate\n", sub)
		return 2
	}
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	var f migrateFlags
	f.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "bulkhead migrate %s: %s\n", sub, fmt.Sprintf(format, a...))
		return 1
	}
	if f.dir == "" {
		fmt.Fprintf(stderr, "bulkhead migrate %s: pass -dir with the directory of your tenant migrations (NNNN_name.up.sql files)\n", sub)
		return 2
	}
	if st, err := os.Stat(f.dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "bulkhead migrate %s: -dir %q is not a readable directory\n", sub, f.dir)
		return 2
	}
	sel, err := f.selection()
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead migrate %s: %v\n", sub, err)
		return 2
	}
	if f.dsn == "" {
		fmt.Fprintf(stderr, "bulkhead migrate %s: no admin DSN: pass -dsn or set DATABASE_URL (the role bulkhead init ran as)\n", sub)
		return 2
	}
	pcfg, err := pgxpool.ParseConfig(f.dsn)
	if err != nil {
		return fail("parsing -dsn: %v", err)
	}
	if f.parallel > 0 {
		pcfg.MaxConns = int32(f.parallel + 1)
	} else if pcfg.MaxConns < 9 {
		pcfg.MaxConns = 9
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fail("connecting: %v", err)
	}
	defer pool.Close()
	var clusters map[string]*pgxpool.Pool
	for name, dsn := range f.clusters {
		ccfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return fail("parsing -cluster %s: %v", name, err)
		}
		ccfg.MaxConns = pcfg.MaxConns
		cpool, err := pgxpool.NewWithConfig(ctx, ccfg)
		if err != nil {
			return fail("connecting to cluster %q: %v", name, err)
		}
		defer cpool.Close()
		if clusters == nil {
			clusters = map[string]*pgxpool.Pool{}
		}
		clusters[name] = cpool
	}

	var bar *progressBar
	cfg := &migrate.Config{
		ControlSchema: f.control, Naming: tenancy.Naming{Prefix: f.prefix},
		Parallelism: f.parallel, LockTimeout: f.lockTimeout,
		Cluster: f.primary, Clusters: clusters,
	}
	if sub == "up" || sub == "down" {
		bar = newProgressBar(stderr)
		cfg.Progress = bar.update
	}
	m, err := migrate.New(pool, os.DirFS(f.dir), cfg)
	if err != nil {
		return fail("%v", err)
	}
	opts := &migrate.RunOpts{Tenants: sel, Target: f.target, Canary: f.canary, ErrorBudget: f.budget, FailFast: f.failFast}
	for _, id := range splitList(f.canaryIDs) {
		tid, err := tenancy.ParseID(id)
		if err != nil {
			fmt.Fprintf(stderr, "bulkhead migrate %s: -canary-tenants: %v\n", sub, err)
			return 2
		}
		opts.CanaryIDs = append(opts.CanaryIDs, tid)
	}
	if f.resume != "" {
		id, err := resumeID(ctx, m, f.resume)
		if err != nil {
			return fail("-resume: %v", err)
		}
		opts.Resume = id
	}

	switch sub {
	case "plan":
		dir := migrate.Up
		if f.down {
			dir = migrate.Down
		}
		p, err := m.Plan(ctx, dir, opts)
		if err != nil {
			return fail("%v", err)
		}
		printPlan(stdout, p, len(m.Migrations()), migrate.Latest(m.Migrations()))
		return 0
	case "status":
		st, err := m.Status(ctx, &sel)
		if err != nil {
			return fail("%v", err)
		}
		printStatus(stdout, st, f.all)
		return 0
	case "validate":
		v, err := m.Validate(ctx, &sel)
		if err != nil {
			return fail("%v", err)
		}
		return printValidate(stdout, v)
	}
	run := m.Up
	if sub == "down" {
		run = m.Down
	}
	res, err := run(ctx, opts)
	bar.finish()
	if res == nil {
		return fail("%v", err)
	}
	printRun(stdout, res)
	if err != nil {
		var pe *migrate.PartialError
		if !errors.As(err, &pe) {
			return fail("%v", err)
		}
		printHints(stdout, res, sub, f.dir)
		return 1
	}
	return 0
}

func resumeID(ctx context.Context, m *migrate.Migrator, s string) (int64, error) {
	if s == "last" {
		run, err := m.Ledger(ctx, 0)
		if err != nil {
			return 0, err
		}
		return run.ID, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is neither a run id nor 'last'", s)
	}
	return id, nil
}

func printPlan(w io.Writer, p *migrate.PlanResult, files int, latest int64) {
	fmt.Fprintf(w, "%d migration file(s), latest version %d.\n", files, latest)
	if len(p.Tenants) == 0 {
		fmt.Fprintf(w, "Nothing to do: all %d selected tenant(s) are at their target.\n", p.AtTarget)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tFROM\tTO\tMIGRATIONS")
	for _, t := range p.Tenants {
		vs := make([]string, len(t.Versions))
		for i, v := range t.Versions {
			vs[i] = strconv.FormatInt(v, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", t.Tenant, t.Status, t.From, t.To, strings.Join(vs, ","))
	}
	tw.Flush()
	verb := "up"
	if p.Direction == migrate.Down {
		verb = "down"
	}
	fmt.Fprintf(w, "\n%d tenant(s) to migrate %s, %d already at target. Nothing was changed; run 'bulkhead migrate %s' with the same flags to apply.\n",
		len(p.Tenants), verb, p.AtTarget, verb)
}

func printStatus(w io.Writer, st *migrate.StatusResult, all bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tVERSION\tLATEST\tSTATE\tLAST RUN\tLAST RESULT")
	shown := 0
	for _, t := range st.Tenants {
		lastFailed := t.Last != nil && t.Last.State == "failed"
		if !all && t.State == "up-to-date" && !lastFailed {
			continue
		}
		run, result := "-", "-"
		if t.Last != nil {
			run = strconv.FormatInt(t.Last.RunID, 10)
			result = t.Last.State
			if t.Last.SQLState != "" {
				result += " (" + t.Last.SQLState + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", t.Tenant, t.Status, t.Version, t.Latest, t.State, run, result)
		shown++
	}
	if shown > 0 {
		tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d tenant(s): %d up to date, %d behind, %d ahead (at a version no file has). Latest version: %d.\n",
		len(st.Tenants), st.UpToDate, st.Behind, st.Ahead, st.Latest)
	if !all && shown < len(st.Tenants) {
		fmt.Fprintln(w, "Only tenants behind, ahead or whose last run failed are listed; -all lists every tenant.")
	}
	if st.Behind > 0 {
		fmt.Fprintln(w, "Run 'bulkhead migrate plan' to see what 'up' would apply.")
	}
}

func printValidate(w io.Writer, v *migrate.ValidateResult) int {
	if len(v.Problems) == 0 {
		fmt.Fprintf(w, "%d tenant(s) checked: every applied migration matches its file and the catalog.\n", v.Checked)
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPROBLEM\tDETAIL")
	for _, p := range v.Problems {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Tenant, p.Kind, p.Detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d problem(s) in %d tenant(s) checked.\n", len(v.Problems), v.Checked)
	fmt.Fprintln(w, "checksum: an applied migration file was edited; restore it (git) and put the change in a new migration.")
	return 1
}

func printRun(w io.Writer, r *migrate.RunResult) {
	var failed []migrate.TenantResult
	for _, t := range r.Tenants {
		if t.State == migrate.Failed {
			failed = append(failed, t)
		}
	}
	if len(failed) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FAILED TENANT\tAT VERSION\tSQLSTATE\tERROR")
		for i, t := range failed {
			if i == 50 {
				fmt.Fprintf(tw, "... and %d more (see the ledger: bulkhead migrate status)\t\t\t\n", len(failed)-50)
				break
			}
			code := t.SQLState
			if code == "" {
				code = "-"
			}
			msg := strings.ReplaceAll(t.Err.Error(), "\n", " ")
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Tenant, t.To, code, msg)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Run %d (%s) took %s:\n", r.RunID, r.Direction, r.Duration.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', tabwriter.AlignRight)
	for _, row := range []struct {
		n    int
		what string
	}{{r.Succeeded, "succeeded"}, {r.Failed, "failed"}, {r.Skipped, "already at target"}, {r.NotStarted, "not started"}} {
		fmt.Fprintf(tw, "  %d\t %s\n", row.n, row.what)
	}
	tw.Flush()
}

func printHints(w io.Writer, r *migrate.RunResult, sub, dir string) {
	fmt.Fprintln(w)
	switch {
	case errors.Is(r.Stopped, migrate.ErrCanaryFailed):
		fmt.Fprintln(w, "A canary tenant failed, so no other tenant was touched. Fix the migration or the canary's data, then run again.")
	case errors.Is(r.Stopped, migrate.ErrBudgetExhausted):
		fmt.Fprintln(w, "The error budget is spent, so the remaining tenants were not started.")
	case errors.Is(r.Stopped, context.Canceled), errors.Is(r.Stopped, context.DeadlineExceeded):
		fmt.Fprintln(w, "The run was interrupted; every tenant is at the last version that committed.")
	}
	for _, t := range r.Tenants {
		var ce *migrate.ChecksumError
		if t.State == migrate.Failed && errors.As(t.Err, &ce) {
			fmt.Fprintf(w, "Migration %04d_%s was edited after it was applied: restore the file and put the change in a new migration.\n", ce.Version, ce.Name)
			break
		}
	}
	for _, t := range r.Tenants {
		if t.SQLState == "55P03" {
			fmt.Fprintln(w, "SQLSTATE 55P03: a tenant's table was locked by a long transaction for longer than -lock-timeout; just run again.")
			break
		}
	}
	fmt.Fprintf(w, "Failed tenants stay at their previous version (see 'bulkhead migrate status'). Fix the cause, then continue this run with:\n  bulkhead migrate %s -resume %d -dir %s\n", sub, r.RunID, dir)
}

// progressBar renders Progress events on a terminal as a redrawn bar, and
// elsewhere (CI logs, files) as a plain line every few seconds.
type progressBar struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	last  time.Time
	shown bool
	p     migrate.Progress
}

func newProgressBar(w io.Writer) *progressBar {
	b := &progressBar{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

func (b *progressBar) update(p migrate.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	every := 2 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if p.Done < p.Total && time.Since(b.last) < every {
		return
	}
	b.last = time.Now()
	b.render()
}

func (b *progressBar) render() {
	p := b.p
	if p.Total == 0 {
		return
	}
	eta := "-"
	if p.Remaining > 0 && p.ETA > 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	stats := fmt.Sprintf("%d/%d tenants (%d ok, %d failed) %.1f/s ETA %s", p.Done, p.Total, p.Succeeded, p.Failed, p.Rate, eta)
	if p.Phase == "canary" {
		stats = "canary " + stats
	}
	if !b.tty {
		fmt.Fprintf(b.w, "progress: %s\n", stats)
		b.shown = true
		return
	}
	const width = 30
	n := width * p.Done / p.Total
	fmt.Fprintf(b.w, "\r[%s%s] %s\x1b[K", strings.Repeat("#", n), strings.Repeat(".", width-n), stats)
	b.shown = true
}

// finish draws the final state and ends the bar's line.
func (b *progressBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.shown && b.p.Total == 0 {
		return
	}
	if b.tty {
		b.render()
		fmt.Fprintln(b.w)
	}
}
