package isotest

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one attack.
type Result struct {
	ID          string   `json:"id"`
	Class       Class    `json:"class"`
	Severity    Severity `json:"severity"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Action      string   `json:"action"`
	Mode        string   `json:"mode"`
	// Expected is the worst outcome the mode allows; Observed is what the
	// attack achieved.
	Expected Outcome `json:"expected"`
	Observed Outcome `json:"observed"`
	Verdict  Verdict `json:"verdict"`
	// Evidence is what the attack saw.
	Evidence string `json:"evidence"`
	// ResidualRisk explains an accepted residual (Verdict Residual only).
	ResidualRisk string        `json:"residual_risk,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
}

// HardeningCheck is one item of the database hardening the report found (or
// did not find) in place. The checks are read-only.
type HardeningCheck struct {
	Name    string `json:"name"`
	InPlace bool   `json:"in_place"`
	Detail  string `json:"detail,omitempty"`
}

// Summary counts results by verdict.
type Summary struct {
	Pass     int `json:"pass"`
	Residual int `json:"residual"`
	Fail     int `json:"fail"`
	Error    int `json:"error"`
	Skipped  int `json:"skipped"`
}

// Report is the outcome of an audit.
type Report struct {
	Tool       string    `json:"tool"`
	Mode       string    `json:"mode"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	PostgreSQL string    `json:"postgresql"`
	Pgx        string    `json:"pgx"`
	Go         string    `json:"go"`
	Database   string    `json:"database"`
	// Hardening lists what the harness found in place, read-only.
	Hardening []HardeningCheck `json:"hardening"`
	// ModeRisks states, in plain words, what the mode does not protect
	// against.
	ModeRisks []string `json:"mode_risks"`
	Summary   Summary  `json:"summary"`
	Results   []Result `json:"results"`

	mu sync.Mutex
}

// Failed reports whether any attack leaked beyond its mode's expectation or
// could not be carried out.
func (r *Report) Failed() bool { return r.Summary.Fail > 0 || r.Summary.Error > 0 }

// Leaks returns the results with Verdict Fail.
func (r *Report) Leaks() []Result { return r.byVerdict(Fail) }

// Residuals returns the results with Verdict Residual.
func (r *Report) Residuals() []Result { return r.byVerdict(Residual) }

func (r *Report) byVerdict(v Verdict) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Verdict == v {
			out = append(out, res)
		}
	}
	return out
}

func (r *Report) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Results = append(r.Results, res)
	switch res.Verdict {
	case Pass:
		r.Summary.Pass++
	case Residual:
		r.Summary.Residual++
	case Fail:
		r.Summary.Fail++
	case Error:
		r.Summary.Error++
	case Skipped:
		r.Summary.Skipped++
	}
}

func (r *Report) finish() { r.FinishedAt = time.Now().UTC() }

// modeRisks are the residual risks of each mode, for a reader who does not
// read SQL.
var modeRisks = map[string][]string{
	ModeSessionRole: {
		"Protects against application bugs (wrong tenant, forgotten filter, stale pooled connection) and data-only SQL injection: the database itself refuses another tenant's tables.",
		"Does NOT protect against a tenant that can run arbitrary SQL on its own connection: the shared gateway login may switch to any active tenant's role (SET ROLE), read the query text of every session after RESET ROLE, and change its own login settings or password (denying service to all tenants). Use TenantLogin for tenant-authored SQL (report builders, SQL consoles, plugins).",
		"In every mode, PostgreSQL shows every tenant the names in the shared catalog (schemas, tables, columns, comments, column defaults, role names) and database-wide activity (lock keys, counters); names are opaque keys, so keep tenant data out of comments and defaults.",
		"In every mode, LISTEN/NOTIFY and advisory locks have no privileges: do not send tenant data in notifications, and do not trust advisory locks or notifications across tenants.",
	},
	ModeTxLocal: {
		"Same protection as SessionRole, with role and search_path scoped to one transaction (safe behind transaction-pooling proxies).",
		"Does NOT protect against a tenant that can run arbitrary SQL: as in SessionRole it can SET ROLE to any active tenant and act as the shared gateway login.",
		"In every mode, PostgreSQL shows every tenant the names in the shared catalog and database-wide activity; LISTEN/NOTIFY and advisory locks have no privileges.",
	},
	ModeTenantLogin: {
		"Each tenant logs in as its own role, a member of its runtime role only: SQL written by the tenant cannot switch to another tenant.",
		"In every mode, PostgreSQL shows every tenant the names in the shared catalog and database-wide activity; LISTEN/NOTIFY and advisory locks have no privileges; CPU and I/O are shared.",
	},
}

// newReport starts a report: versions and the hardening found in place.
func (e *env) newReport(ctx context.Context, t *Target) *Report {
	r := &Report{Tool: "bulkhead isotest", Mode: e.mode, StartedAt: time.Now().UTC(), Pgx: pgxVersion(), Go: goVersion(),
		ModeRisks: modeRisks[e.mode]}
	_ = e.admin.QueryRow(ctx, "SELECT current_setting('server_version'), current_database()").Scan(&r.PostgreSQL, &r.Database)
	r.Hardening = readHardening(ctx, e, t)
	return r
}

// readHardening checks, read-only through the admin pool, the hardening
// items provision.Init applies and a few server settings that matter.
func readHardening(ctx context.Context, e *env, t *Target) []HardeningCheck {
	gw := t.Provisioner.Config().GatewayRole
	items := []struct{ name, ok, detail string }{
		{"schema public closed to PUBLIC",
			"SELECT NOT (has_schema_privilege('public', 'public', 'CREATE') OR has_schema_privilege('public', 'public', 'USAGE'))",
			"REVOKE ALL ON SCHEMA public FROM PUBLIC (owner of schema public)"},
		{"no TEMP for PUBLIC", "SELECT NOT has_database_privilege('public', current_database(), 'TEMP')",
			"REVOKE TEMPORARY ON DATABASE ... FROM PUBLIC (database owner)"},
		{"no CONNECT for PUBLIC", "SELECT NOT has_database_privilege('public', current_database(), 'CONNECT')",
			"REVOKE CONNECT ON DATABASE ... FROM PUBLIC (database owner)"},
		{"set_config revoked from PUBLIC",
			"SELECT NOT has_function_privilege('public', 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE')",
			"REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC (superuser)"},
		{"pg_stat_activity revoked from PUBLIC", "SELECT NOT has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')",
			"REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC (superuser)"},
		{"table statistics revoked from PUBLIC", "SELECT NOT has_table_privilege('public', 'pg_catalog.pg_stat_user_tables', 'SELECT')",
			"REVOKE SELECT ON pg_catalog.pg_stat_user_tables, pg_stat_all_tables, ... FROM PUBLIC (superuser)"},
		{"large-object creation revoked from PUBLIC",
			"SELECT NOT has_function_privilege('public', 'pg_catalog.lo_from_bytea(oid,bytea)', 'EXECUTE')",
			"REVOKE EXECUTE ON FUNCTION lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea), lo_import(text) FROM PUBLIC (superuser)"},
		{"lo_compat_privileges off", "SELECT current_setting('lo_compat_privileges') = 'off'", "ALTER SYSTEM SET lo_compat_privileges = off (superuser)"},
		{"temp_file_limit set", "SELECT current_setting('temp_file_limit') <> '-1' OR EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE d.datname = current_database() AND s.setrole = 0 AND c LIKE 'temp_file_limit=%' AND c <> 'temp_file_limit=-1')", "ALTER DATABASE ... SET temp_file_limit = '1GB' (superuser)"},
		{"gateway NOINHERIT, no SUPERUSER/CREATEROLE/CREATEDB/BYPASSRLS",
			"SELECT coalesce((SELECT NOT (rolinherit OR rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls) FROM pg_roles WHERE rolname = " + quoteLit(gw) + "), false)",
			"ALTER ROLE <gateway> NOINHERIT NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS"},
		{"database owned by a NOLOGIN role",
			"SELECT NOT r.rolcanlogin FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()",
			"ALTER DATABASE ... OWNER TO <a NOLOGIN role> (superuser)"},
	}
	var out []HardeningCheck
	for _, it := range items {
		var ok bool
		c := HardeningCheck{Name: it.name}
		if err := e.admin.QueryRow(ctx, it.ok).Scan(&ok); err != nil {
			c.Detail = "could not check: " + err.Error()
		} else if c.InPlace = ok; !ok {
			c.Detail = "missing; to fix: " + it.detail
		}
		out = append(out, c)
	}
	return out
}

// quoteLit quotes s as an SQL string literal (single quotes doubled).
func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// WriteText writes the report for humans: versions, hardening, a summary, one
// line per attack, then the residual risks and the failures in full.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bulkhead isotest report: mode %s, database %q\n", r.Mode, r.Database)
	fmt.Fprintf(&b, "PostgreSQL %s, pgx %s, %s; %s to %s\n\n", r.PostgreSQL, r.Pgx, r.Go,
		r.StartedAt.Format(time.RFC3339), r.FinishedAt.Format(time.RFC3339))
	fmt.Fprintf(&b, "VERDICT: %s (%d pass, %d known residual, %d FAIL, %d error, %d skipped)\n\n",
		map[bool]string{true: "LEAKS FOUND", false: "no leak beyond the mode's known residuals"}[r.Failed()],
		r.Summary.Pass, r.Summary.Residual, r.Summary.Fail, r.Summary.Error, r.Summary.Skipped)

	b.WriteString("Hardening found in place:\n")
	for _, h := range r.Hardening {
		mark := "yes"
		if !h.InPlace {
			mark = "NO "
		}
		fmt.Fprintf(&b, "  [%s] %s", mark, h.Name)
		if h.Detail != "" {
			fmt.Fprintf(&b, " (%s)", h.Detail)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\nWhat %s protects against, and what it does not:\n", r.Mode)
	for _, s := range r.ModeRisks {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	b.WriteString("\nResults:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tVERDICT\tOBSERVED\tEXPECTED\tSEVERITY\tATTACK")
	for _, res := range r.sorted() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", res.ID, strings.ToUpper(string(res.Verdict)), res.Observed, res.Expected, res.Severity, res.Title)
	}
	_ = tw.Flush()
	if res := r.Residuals(); len(res) > 0 {
		b.WriteString("\nKnown residual risks observed (accepted in this mode):\n")
		for _, x := range res {
			fmt.Fprintf(&b, "  %s %s: %s\n    evidence: %s\n    why accepted: %s\n", x.ID, x.Title, x.Observed, x.Evidence, x.ResidualRisk)
		}
	}
	for _, v := range []Verdict{Fail, Error} {
		if res := r.byVerdict(v); len(res) > 0 {
			fmt.Fprintf(&b, "\n%s:\n", map[Verdict]string{Fail: "LEAKS (worse than the mode allows)", Error: "Attacks the harness could not carry out"}[v])
			for _, x := range res {
				fmt.Fprintf(&b, "  %s [%s] %s\n    tried: %s\n    observed: %s (allowed: %s)\n    evidence: %s\n", x.ID, x.Severity, x.Title, x.Action, x.Observed, x.Expected, x.Evidence)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sorted returns the results in catalogue order.
func (r *Report) sorted() []Result {
	order := map[string]int{}
	for i, a := range Catalogue() {
		order[a.ID] = i
	}
	out := append([]Result(nil), r.Results...)
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].ID] < order[out[j].ID] })
	return out
}
