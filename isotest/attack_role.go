package isotest

import (
	"context"
	"fmt"
	"strings"
)

// readAttack runs the statements as A and classifies the output of the last
// one by the victim canaries it contains.
func readAttack(stmts func(e *env) []string) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		out, err := e.runAs(ctx, e.a, stmts(e)...)
		return e.classifyRead(out, err)
	}
}

// succeedAttack runs the statements as A; their success is outcome kind.
func succeedAttack(kind Outcome, stmts func(e *env) []string) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		ss := stmts(e)
		_, err := e.runAs(ctx, e.a, ss...)
		if err != nil {
			if harnessBroken(err) {
				return failed(err)
			}
			return observed(Blocked, "%s", refused(err))
		}
		return observed(kind, "succeeded: %s", abbrev(ss[len(ss)-1]))
	}
}

func (e *env) classifyRead(out string, err error) observation {
	if err != nil {
		if harnessBroken(err) {
			return failed(err)
		}
		return observed(Blocked, "%s", refused(err))
	}
	if c, ok := sawAny(out, e.b.data()); ok {
		return observed(LeakedData, "read the victim's canary %s", c)
	}
	if c, ok := sawAny(out, e.b.meta()); ok {
		return observed(LeakedMetadata, "read the victim's catalog canary %s", c)
	}
	return observed(Blocked, "ran without error and returned nothing of the victim")
}

const residualSharedPool = "In SessionRole and TxLocal the pooled connections log in as one gateway role that is a member of every active tenant's role, so SQL the tenant controls can switch to another tenant's role. This is PostgreSQL's role model, documented in docs/SECURITY.md; it matters only if tenants (or an injection) can run arbitrary SQL. TenantLogin closes it."

func init() {
	register(
		&Attack{
			ID: "ROLE-001", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE to the victim's role, then read its table",
			Description: "A session may SET ROLE to any role its session user is a member of. In the shared-pool modes the gateway is a member of every active tenant role.",
			Action:      "SET ROLE <B role>; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectShared(LeakedData, Blocked), Residual: residualSharedPool,
			run: readAttack(func(e *env) []string {
				return []string{"SET ROLE " + e.b.role(), "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-002", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE to the victim's role, then write its table",
			Description: "As ROLE-001, writing instead of reading (rolled back by the harness).",
			Action:      "SET ROLE <B role>; INSERT INTO <B schema>.bh_isotest_canary (secret) VALUES ('intruder')",
			Expect:      expectShared(Write, Blocked), Residual: residualSharedPool,
			run: succeedAttack(Write, func(e *env) []string {
				return []string{"SET ROLE " + e.b.role(), "INSERT INTO " + e.b.table() + " (secret) VALUES ('isotest-intruder')"}
			}),
		},
		&Attack{
			ID: "ROLE-003", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "RESET ROLE to the session user, then read the victim's table",
			Description: "RESET ROLE returns to the login role. bulkhead's gateway is NOINHERIT and holds no privileges of its own, so it must read nothing.",
			Action:      "RESET ROLE; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"RESET ROLE", "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-004", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET SESSION AUTHORIZATION to the victim's role",
			Description: "SET SESSION AUTHORIZATION changes the session user itself; PostgreSQL allows it only to superusers.",
			Action:      "SET SESSION AUTHORIZATION <B role>; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"SET SESSION AUTHORIZATION " + e.b.role(), "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-005", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "set_config('role', ...) inside one expression (single-expression injection)",
			Description: "set_config is a function, so an injected expression can switch the role for the rest of the session; revoking EXECUTE on set_config from PUBLIC (superuser, provision.Init reports it) closes it.",
			Action:      "SELECT set_config('role', '<B role>', false); SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectShared(LeakedData, Blocked), Residual: residualSharedPool + " Revoking EXECUTE on set_config from PUBLIC (needs a superuser) blocks the single-expression variant.",
			run: readAttack(func(e *env) []string {
				return []string{"SELECT set_config('role', " + quoteLit(e.b.t.Role) + ", false)", "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-006", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE inside a DO block",
			Description: "Anonymous code blocks run with the caller's rights and may execute SET ROLE dynamically; the role sticks after the block.",
			Action:      "DO $$ BEGIN EXECUTE 'SET ROLE <B role>'; END $$; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectShared(LeakedData, Blocked), Residual: residualSharedPool,
			run: readAttack(func(e *env) []string {
				return []string{"DO $isotest$ BEGIN EXECUTE " + quoteLit("SET ROLE "+e.b.role()) + "; END $isotest$", "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-007", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE to the tenant owner role",
			Description: "The owner role owns every tenant schema; the gateway must not be a member of it.",
			Action:      "SET ROLE <owner role>; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"SET ROLE " + quoteIdent(e.owner), "SELECT secret FROM " + e.b.table()}
			}),
		},
		&Attack{
			ID: "ROLE-008", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE to a superuser or the database owner",
			Description: "Tries every superuser and the database owner; the gateway must be a member of none.",
			Action:      "SET ROLE <each superuser and the database owner>",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				var targets []string
				err := e.do(ctx, e.a, func(db DB) error {
					out, err := queryAll(ctx, db, "SELECT quote_ident(rolname) FROM pg_roles WHERE rolsuper UNION SELECT quote_ident(r.rolname) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()")
					targets = strings.Fields(out)
					return err
				})
				if err != nil {
					return failed(err)
				}
				var got []string
				for _, r := range targets {
					if _, err := e.runAs(ctx, e.a, "SET ROLE "+r); err == nil {
						got = append(got, r)
					}
				}
				if len(got) > 0 {
					return observed(Write, "SET ROLE succeeded to %s", strings.Join(got, ", "))
				}
				return observed(Blocked, "SET ROLE refused for %s", strings.Join(targets, ", "))
			},
		},
		&Attack{
			ID: "ROLE-009", Class: ClassRoleEscape, Severity: SeverityHigh,
			Title:       "SECURITY DEFINER function in a schema the tenant can create in",
			Description: "A SECURITY DEFINER function runs with its owner's rights; a tenant that can create one anywhere can leave a back door. The tenant has no CREATE on any schema.",
			Action:      "CREATE FUNCTION <own schema>.bh_isotest_sd() ... SECURITY DEFINER; then the same in public",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				for _, s := range []string{e.a.schema(), "public"} {
					_, err := e.runAs(ctx, e.a, "CREATE FUNCTION "+s+".bh_isotest_sd() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT current_user::text $$")
					if err == nil {
						return observed(Write, "created a SECURITY DEFINER function in schema %s", s)
					}
					if harnessBroken(err) {
						return failed(err)
					}
				}
				return observed(Blocked, "CREATE FUNCTION refused in the tenant's schema and in public")
			},
		},
		&Attack{
			ID: "ROLE-010", Class: ClassRoleEscape, Severity: SeverityCritical,
			Title:       "SET ROLE NONE and SET SESSION AUTHORIZATION DEFAULT, then read the victim's table",
			Description: "The other spellings of 'back to the login role' must land on the same powerless gateway as RESET ROLE.",
			Action:      "SET ROLE NONE; SELECT ...; SET SESSION AUTHORIZATION DEFAULT; SELECT ... FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				for _, s := range []string{"SET ROLE NONE", "SET SESSION AUTHORIZATION DEFAULT", "SET LOCAL ROLE NONE"} {
					out, err := e.runAs(ctx, e.a, s, "SELECT secret FROM "+e.b.table())
					if o := e.classifyRead(out, err); o.Outcome != Blocked || o.Err != nil {
						o.Evidence = s + ": " + o.Evidence
						return o
					}
				}
				return observed(Blocked, "every variant landed on a role that cannot read the victim's table")
			},
		},
		&Attack{
			ID: "ROLE-011", Class: ClassRoleEscape, Severity: SeverityHigh,
			Title:       "SECURITY DEFINER function without a pinned search_path",
			Description: "A SECURITY DEFINER function that resolves names through the caller's search_path can be tricked into running the caller's objects with the owner's rights (the pattern behind CVE-2007-2138 and CVE-2018-1058). Lists every such function the tenant or the gateway may execute.",
			Action:      "SELECT oid::regprocedure FROM pg_proc WHERE prosecdef AND no search_path in proconfig AND has_function_privilege(current_user, oid, 'EXECUTE'), before and after RESET ROLE",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				q := "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p WHERE p.prosecdef AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%') AND has_function_privilege(current_user, p.oid, 'EXECUTE')"
				for _, pre := range []string{"SELECT 1", "RESET ROLE"} {
					out, err := e.runAs(ctx, e.a, pre, q)
					if err != nil {
						return failed(err)
					}
					if s := strings.TrimSpace(out); s != "" && s != "<nil>" {
						return observed(Write, "executable SECURITY DEFINER functions without a pinned search_path (after %s): %s", pre, s)
					}
				}
				return observed(Blocked, "every SECURITY DEFINER function the tenant or the gateway may execute pins search_path")
			},
		},
		&Attack{
			ID: "ROLE-012", Class: ClassRoleEscape, Severity: SeverityHigh,
			Title:       "Role after rolling back SET SESSION AUTHORIZATION (CVE-2024-10978)",
			Description: "Before PostgreSQL 17.2/16.6/15.10/14.15/13.18 rolling back a SET SESSION AUTHORIZATION reverted to SET ROLE NONE instead of the previous role. Whatever role the session ends on must still not read the victim.",
			Action:      "SAVEPOINT s; SET SESSION AUTHORIZATION DEFAULT; ROLLBACK TO SAVEPOINT s; SELECT current_user; SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				var user string
				var out string
				var rerr error
				err := e.do(ctx, e.a, func(db DB) error {
					for _, s := range []string{"SAVEPOINT bh_isotest", "SET SESSION AUTHORIZATION DEFAULT", "ROLLBACK TO SAVEPOINT bh_isotest"} {
						if _, err := db.Exec(ctx, s); err != nil {
							return err
						}
					}
					if err := db.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
						return err
					}
					out, rerr = queryAll(ctx, db, "SELECT secret FROM "+e.b.table())
					return nil
				})
				if err != nil {
					return failed(err)
				}
				o := e.classifyRead(out, rerr)
				o.Evidence = fmt.Sprintf("current_user after the rollback: %s; %s", user, o.Evidence)
				return o
			},
		},
	)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
