package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/migrate"
	bsql "github.com/bulkhead-go/bulkhead/sql"
)

// CheckState says what Init found or did for one hardening check.
type CheckState string

const (
	// Applied: Init made the change now.
	Applied CheckState = "applied"
	// InPlace: the database already had it.
	InPlace CheckState = "in-place"
	// NotApplied: Init could not make the change (usually: it needs a
	// superuser or the database owner). Detail says what to run and as whom.
	NotApplied CheckState = "not-applied"
)

// Check is one line of an InitReport.
type Check struct {
	Name   string     `json:"name"`
	State  CheckState `json:"state"`
	Detail string     `json:"detail,omitempty"`
}

// InitReport lists what Init applied and what it could not.
type InitReport struct {
	Checks []Check `json:"checks"`
}

// NotApplied returns the checks Init could not apply.
func (r *InitReport) NotApplied() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.State == NotApplied {
			out = append(out, c)
		}
	}
	return out
}

// String renders the report one check per line.
func (r *InitReport) String() string {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-12s %s", c.State, c.Name)
		if c.Detail != "" {
			fmt.Fprintf(&b, ": %s", c.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (r *InitReport) add(name string, state CheckState, detail string, args ...any) {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	r.Checks = append(r.Checks, Check{Name: name, State: state, Detail: detail})
}

// initLockKey serializes concurrent Init calls on one database.
const initLockKey int64 = 0x62756c6b68656164 // "bulkhead"

// Init creates or upgrades the control schema and applies the database
// hardening bulkhead relies on. It is idempotent and safe to run at every
// start. Hardening that needs more privilege than the admin role has (for
// example revoking set_config from PUBLIC needs a superuser) is reported as
// NotApplied with the statement to run, not silently skipped; only problems
// that make isolation impossible (an unusable gateway role, no CREATEROLE)
// return an error.
func (p *Provisioner) Init(ctx context.Context) (*InitReport, error) {
	rep := &InitReport{}
	err := p.initCluster(ctx, p.pool, true, rep)
	for _, name := range p.ClusterNames()[1:] {
		if err != nil {
			break
		}
		sub := &InitReport{}
		if err = p.initCluster(ctx, p.cfg.Clusters[name], false, sub); err != nil {
			err = fmt.Errorf("cluster %q: %w", name, err)
		}
		for _, c := range sub.Checks {
			c.Name = "cluster " + name + ": " + c.Name
			rep.Checks = append(rep.Checks, c)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("provision: Init: %w", err)
	}
	return rep, nil
}

// initCluster hardens the database of one cluster; the primary also gets the
// control schema and the audit event.
func (p *Provisioner) initCluster(ctx context.Context, pool *pgxpool.Pool, primary bool, rep *InitReport) error {
	return txOn(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", initLockKey); err != nil {
			return err
		}
		var super, createRole bool
		var me, db string
		if err := tx.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, current_user, current_database() FROM pg_roles WHERE rolname = current_user`).
			Scan(&super, &createRole, &me, &db); err != nil {
			return fmt.Errorf("reading admin role attributes: %w", err)
		}
		if !super && !createRole {
			return fmt.Errorf("provision: the admin role %q needs CREATEROLE (ALTER ROLE %s CREATEROLE, as a superuser)", me, quote(me))
		}
		steps := []func(context.Context, pgx.Tx, *InitReport, string, string) error{
			p.initOwnerRole,
			p.initGateway,
			p.initGatewayShards,
			p.initDatabaseHardening,
			p.initCatalogHardening,
		}
		if primary {
			steps = append([]func(context.Context, pgx.Tx, *InitReport, string, string) error{p.initControlSchema}, steps...)
		}
		for _, step := range steps {
			if err := step(ctx, tx, rep, me, db); err != nil {
				return err
			}
		}
		if !primary {
			return nil
		}
		q := dbsqlc.New(tx)
		if _, err := tx.Exec(ctx, p.controlPath()); err != nil {
			return err
		}
		return audit(ctx, q, "", "init", db, map[string]any{"not_applied": len(rep.NotApplied())})
	})
}

func (p *Provisioner) controlTxRaw(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return txOn(ctx, p.pool, fn)
}

// txOn runs fn in a transaction on pool.
func txOn(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// try runs sql in a savepoint so a privilege failure does not abort Init.
func try(ctx context.Context, tx pgx.Tx, sql string) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := sp.Exec(ctx, sql); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

func (p *Provisioner) initControlSchema(ctx context.Context, tx pgx.Tx, rep *InitReport, me, _ string) error {
	schema := p.cfg.ControlSchema
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+quote(schema)); err != nil {
			return fmt.Errorf("creating control schema %q: %w", schema, err)
		}
	}
	ms, err := migrate.Load(bsql.ControlMigrations())
	if err != nil {
		return err
	}
	res, err := migrate.ApplyTx(ctx, tx, schema, ms, nil)
	if err != nil {
		return fmt.Errorf("migrating control schema: %w", err)
	}
	if _, err := tx.Exec(ctx, "REVOKE ALL ON SCHEMA "+quote(schema)+" FROM PUBLIC"); err != nil {
		return err
	}
	switch {
	case !exists:
		rep.add("control schema", Applied, "created %q at version %d, owned by %q", schema, res.To, me)
	case len(res.Applied) > 0:
		rep.add("control schema", Applied, "upgraded %q from version %d to %d", schema, res.From, res.To)
	default:
		rep.add("control schema", InPlace, "%q at version %d", schema, res.To)
	}
	return nil
}

func (p *Provisioner) initOwnerRole(ctx context.Context, tx pgx.Tx, rep *InitReport, me, db string) error {
	owner := p.cfg.Naming.OwnerRole()
	var exists, login bool
	err := tx.QueryRow(ctx, `SELECT true, rolcanlogin FROM pg_roles WHERE rolname = $1`, owner).Scan(&exists, &login)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+quote(owner)+" NOLOGIN NOINHERIT"); err != nil {
			return fmt.Errorf("creating tenant owner role %q: %w", owner, err)
		}
		rep.add("tenant owner role", Applied, "created NOLOGIN role %q; it owns every tenant schema and object", owner)
	} else if login {
		if _, err := tx.Exec(ctx, "ALTER ROLE "+quote(owner)+" NOLOGIN"); err != nil {
			return fmt.Errorf("tenant owner role %q can log in and could not be altered: %w", owner, err)
		}
		rep.add("tenant owner role", Applied, "%q could log in; made it NOLOGIN", owner)
	} else {
		rep.add("tenant owner role", InPlace, "%q is NOLOGIN", owner)
	}
	// The admin creates tenant objects as the owner (SET ROLE), so it must be a member.
	if _, err := tx.Exec(ctx, "GRANT "+quote(owner)+" TO "+quote(me)); err != nil {
		return fmt.Errorf("granting %q to the admin role %q: %w", owner, me, err)
	}
	var canCreate bool
	if err := tx.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CREATE')`, owner).Scan(&canCreate); err != nil {
		return err
	}
	if !canCreate {
		if err := try(ctx, tx, "GRANT CREATE ON DATABASE "+quote(db)+" TO "+quote(owner)); err != nil {
			return fmt.Errorf("the tenant owner role %q needs CREATE on database %q (GRANT CREATE ON DATABASE %s TO %s, as the database owner): %w",
				owner, db, quote(db), quote(owner), err)
		}
	}
	// Functions and types created in tenant schemas are not executable by PUBLIC.
	if _, err := tx.Exec(ctx, "ALTER DEFAULT PRIVILEGES FOR ROLE "+quote(owner)+" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"); err != nil {
		return fmt.Errorf("revoking default EXECUTE for %q: %w", owner, err)
	}
	return nil
}

func (p *Provisioner) initGateway(ctx context.Context, tx pgx.Tx, rep *InitReport, _, db string) error {
	gw := p.cfg.GatewayRole
	g, err := hardenGatewayRole(ctx, tx, gw, db)
	if err != nil {
		return err
	}
	switch {
	case g.created:
		rep.add("gateway role", Applied, "created %q NOLOGIN NOINHERIT; to use it run, as an admin: ALTER ROLE %s LOGIN PASSWORD '...'", gw, quote(gw))
	case g.fixed != "":
		rep.add("gateway role", Applied, "%s", g.fixed)
	default:
		rep.add("gateway role", InPlace, "%q is NOINHERIT with no superuser, CREATEROLE, CREATEDB or BYPASSRLS", gw)
	}
	if !g.created && !g.login {
		rep.add("gateway login", NotApplied, "%q cannot log in; run as an admin: ALTER ROLE %s LOGIN PASSWORD '...'", gw, quote(gw))
	}
	if g.owned > 0 {
		rep.add("gateway owns nothing", NotApplied, "%q owns %d relations, schemas or functions in this database; reassign them (REASSIGN OWNED BY %s TO ...)", gw, g.owned, quote(gw))
	} else {
		rep.add("gateway owns nothing", InPlace, "")
	}
	cs := quote(p.cfg.ControlSchema)
	// Only the primary cluster holds the catalog (cluster.go).
	var hasCatalog bool
	if err := tx.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL", cs+".route_tenant(text)").Scan(&hasCatalog); err != nil {
		return err
	}
	for _, stmt := range []string{
		"GRANT USAGE ON SCHEMA " + cs + " TO " + quote(gw),
		"GRANT EXECUTE ON FUNCTION " + cs + ".route_tenant(text) TO " + quote(gw),
	} {
		if !hasCatalog {
			break
		}
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	if g.connectErr != nil {
		rep.add("gateway CONNECT", NotApplied, "could not grant CONNECT on %q to %q: %v", db, gw, g.connectErr)
	}
	return nil
}

// gatewayRoleState is what hardenGatewayRole found and did.
type gatewayRoleState struct {
	created    bool   // the role did not exist and was created NOLOGIN NOINHERIT
	fixed      string // the ALTER ROLE that removed unsafe attributes, if any
	login      bool   // the role can log in
	owned      int    // relations, schemas and functions it owns in this database
	connectErr error  // GRANT CONNECT failed
}

// hardenGatewayRole creates a request-path login role (the gateway or a
// gateway shard) if it is missing, NOLOGIN NOINHERIT (its password is set by
// an admin or SetGatewayPassword), or removes the attributes that would make
// routing through it unsafe; it refuses a superuser or a database owner, and
// grants CONNECT on the database.
func hardenGatewayRole(ctx context.Context, tx pgx.Tx, gw, db string) (*gatewayRoleState, error) {
	g := &gatewayRoleState{}
	var exists, super, createRole, createDB, bypassRLS, inherit bool
	err := tx.QueryRow(ctx, `SELECT true, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolinherit, rolcanlogin
		FROM pg_roles WHERE rolname = $1`, gw).Scan(&exists, &super, &createRole, &createDB, &bypassRLS, &inherit, &g.login)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+quote(gw)+" NOLOGIN NOINHERIT"); err != nil {
			return nil, fmt.Errorf("creating gateway role %q: %w", gw, err)
		}
		g.created = true
	} else {
		if super {
			return nil, fmt.Errorf("provision: the gateway role %q is a superuser; bulkhead refuses to route through it (ALTER ROLE %s NOSUPERUSER)", gw, quote(gw))
		}
		var fixes []string
		if inherit {
			fixes = append(fixes, "NOINHERIT")
		}
		if createRole {
			fixes = append(fixes, "NOCREATEROLE")
		}
		if createDB {
			fixes = append(fixes, "NOCREATEDB")
		}
		if bypassRLS {
			fixes = append(fixes, "NOBYPASSRLS")
		}
		if len(fixes) > 0 {
			stmt := "ALTER ROLE " + quote(gw) + " " + strings.Join(fixes, " ")
			if err := try(ctx, tx, stmt); err != nil {
				return nil, fmt.Errorf("provision: the gateway role %q is unsafe and could not be fixed (%s): %w", gw, stmt, err)
			}
			g.fixed = stmt
		}
	}
	var ownsDB bool
	if err := tx.QueryRow(ctx, `SELECT d.datdba = r.oid FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = $1`, gw).Scan(&ownsDB); err != nil {
		return nil, err
	}
	if ownsDB {
		return nil, fmt.Errorf("provision: the gateway role %q owns database %q; give the database to a NOLOGIN role", gw, db)
	}
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1)
		+ (SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE r.rolname = $1)
		+ (SELECT count(*) FROM pg_proc f JOIN pg_roles r ON r.oid = f.proowner WHERE r.rolname = $1)`, gw).Scan(&g.owned); err != nil {
		return nil, err
	}
	g.connectErr = try(ctx, tx, "GRANT CONNECT ON DATABASE "+quote(db)+" TO "+quote(gw))
	return g, nil
}

// initDatabaseHardening applies what the database owner may do.
func (p *Provisioner) initDatabaseHardening(ctx context.Context, tx pgx.Tx, rep *InitReport, me, db string) error {
	// Keep the admin and the gateway able to connect before closing the door on PUBLIC.
	_ = try(ctx, tx, "GRANT CONNECT ON DATABASE "+quote(db)+" TO "+quote(me))
	for _, it := range []struct{ name, check, stmt, who string }{
		{"schema public closed to PUBLIC",
			`SELECT coalesce((SELECT has_schema_privilege('public', 'public', 'CREATE') OR has_schema_privilege('public', 'public', 'USAGE')), false)`,
			"REVOKE ALL ON SCHEMA public FROM PUBLIC", "the owner of schema public (the database owner on PostgreSQL 15)"},
		{"no TEMP for PUBLIC", `SELECT has_database_privilege('public', current_database(), 'TEMP')`,
			"REVOKE TEMPORARY ON DATABASE " + quote(db) + " FROM PUBLIC", "the database owner"},
		{"no CONNECT for PUBLIC", `SELECT has_database_privilege('public', current_database(), 'CONNECT')`,
			"REVOKE CONNECT ON DATABASE " + quote(db) + " FROM PUBLIC", "the database owner"},
	} {
		if err := p.harden(ctx, tx, rep, it.name, it.check, it.stmt, it.who); err != nil {
			return err
		}
	}

	var ownerLogin bool
	var owner string
	if err := tx.QueryRow(ctx, `SELECT r.rolname, r.rolcanlogin FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()`).Scan(&owner, &ownerLogin); err != nil {
		return err
	}
	if ownerLogin {
		rep.add("database owned by a NOLOGIN role", NotApplied, "database %q is owned by LOGIN role %q; as a superuser: CREATE ROLE dbowner NOLOGIN; ALTER DATABASE %s OWNER TO dbowner", db, owner, quote(db))
	} else {
		rep.add("database owned by a NOLOGIN role", InPlace, "owner %q", owner)
	}
	return nil
}

// initCatalogHardening revokes PUBLIC access to functions and views that let a
// session change its role inside an expression or watch other sessions. Only a
// superuser owns pg_catalog, so an ordinary admin gets NotApplied lines.
func (p *Provisioner) initCatalogHardening(ctx context.Context, tx pgx.Tx, rep *InitReport, _, _ string) error {
	items := []struct{ name, check, stmt string }{
		{"set_config revoked from PUBLIC",
			`SELECT has_function_privilege('public', 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE')`,
			"REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC"},
		{"pg_stat_activity revoked from PUBLIC",
			`SELECT has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')`,
			"REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC"},
		{"pg_stat_get_activity revoked from PUBLIC",
			`SELECT has_function_privilege('public', 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')`,
			"REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC"},
		{"pg_stat_user_tables revoked from PUBLIC",
			`SELECT has_table_privilege('public', 'pg_catalog.pg_stat_user_tables', 'SELECT')`,
			"REVOKE SELECT ON pg_catalog.pg_stat_user_tables, pg_catalog.pg_stat_all_tables, pg_catalog.pg_statio_user_tables, pg_catalog.pg_statio_all_tables FROM PUBLIC"},
	}
	for _, it := range items {
		if err := p.harden(ctx, tx, rep, it.name, it.check, it.stmt, "a superuser"); err != nil {
			return err
		}
	}
	// The router switches with set_config as the gateway (one prepared
	// statement instead of three SETs); tenant roles still cannot call it.
	logins := append([]string{p.cfg.GatewayRole}, p.GatewayLogins()...)
	slices.Sort(logins)
	var granted, missing []string
	for _, gw := range slices.Compact(logins) {
		var can bool
		if err := tx.QueryRow(ctx, `SELECT has_function_privilege(r.oid, 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE')
			FROM pg_roles r WHERE r.rolname = $1`, gw).Scan(&can); err != nil {
			return fmt.Errorf("checking %q's EXECUTE on set_config: %w", gw, err)
		}
		if can {
			continue
		}
		stmt := "GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO " + quote(gw)
		if err := try(ctx, tx, stmt); err != nil {
			missing = append(missing, stmt)
		} else {
			granted = append(granted, gw)
		}
	}
	switch {
	case len(missing) > 0:
		rep.add("gateway may execute set_config", NotApplied, "needs a superuser: %s; the router falls back to SET statements, which cost more", strings.Join(missing, "; "))
	case len(granted) > 0:
		rep.add("gateway may execute set_config", Applied, "GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO %s", strings.Join(granted, ", "))
	default:
		rep.add("gateway may execute set_config", InPlace, "")
	}
	var unpinned []string
	rows, err := tx.Query(ctx, `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.prosecdef
		AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%')`, p.cfg.ControlSchema)
	if err != nil {
		return err
	}
	unpinned, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(unpinned) > 0 {
		return fmt.Errorf("provision: SECURITY DEFINER functions without a pinned search_path in %q: %v", p.cfg.ControlSchema, unpinned)
	}
	rep.add("SECURITY DEFINER functions pin search_path", InPlace, "")
	return nil
}

// harden runs check (a query returning true while the hole is open); if
// open, it tries stmt and checks again, because a REVOKE by a role without the
// right only warns ("no privileges could be revoked") instead of failing.
func (p *Provisioner) harden(ctx context.Context, tx pgx.Tx, rep *InitReport, name, check, stmt, who string) error {
	open := func() (bool, error) {
		var v bool
		if err := tx.QueryRow(ctx, check).Scan(&v); err != nil {
			return false, fmt.Errorf("checking %s: %w", name, err)
		}
		return v, nil
	}
	isOpen, err := open()
	if err != nil || !isOpen {
		if err == nil {
			rep.add(name, InPlace, "")
		}
		return err
	}
	if err := try(ctx, tx, stmt); err != nil {
		rep.add(name, NotApplied, "needs %s: %s (%v)", who, stmt, err)
		return nil
	}
	if isOpen, err = open(); err != nil {
		return err
	}
	if isOpen {
		rep.add(name, NotApplied, "needs %s: %s", who, stmt)
		return nil
	}
	rep.add(name, Applied, "%s", stmt)
	return nil
}
