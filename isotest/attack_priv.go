package isotest

import (
	"context"
	"strings"
)

const residualGatewaySelf = "PostgreSQL lets every role change its own password and its own per-role settings (ALTER ROLE CURRENT_USER ...). In SessionRole and TxLocal, SQL the tenant controls can RESET ROLE to the shared gateway login and do so, denying service to every tenant (new connections fail to log in, or start read-only). Nothing is read or written in other tenants' schemas. No privilege closes it; TenantLogin confines it to the tenant's own login. Keep tenant input out of SQL text."

func init() {
	register(
		&Attack{
			ID: "PRIV-001", Class: ClassGatewayPriv, Severity: SeverityCritical,
			Title:       "Gateway role attributes after RESET ROLE",
			Description: "The login the pool uses must have no SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION, and must be NOINHERIT when it is a member of other tenants' roles (or it would hold every tenant's privileges at once).",
			Action:      "RESET ROLE; SELECT rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = current_user",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "RESET ROLE",
					"SELECT concat_ws(',', CASE WHEN rolinherit AND pg_has_role(current_user, "+quoteLit(e.b.t.Role)+", 'MEMBER') THEN 'INHERIT (and a member of the victim''s role)' END, CASE WHEN rolsuper THEN 'SUPERUSER' END, CASE WHEN rolcreaterole THEN 'CREATEROLE' END, CASE WHEN rolcreatedb THEN 'CREATEDB' END, CASE WHEN rolbypassrls THEN 'BYPASSRLS' END, CASE WHEN rolreplication THEN 'REPLICATION' END) FROM pg_roles WHERE rolname = current_user")
				if err != nil {
					return failed(err)
				}
				if s := strings.TrimSpace(out); s != "" {
					return observed(Write, "the login role has %s", s)
				}
				return observed(Blocked, "the login role is NOINHERIT with no dangerous attribute")
			},
		},
		&Attack{
			ID: "PRIV-002", Class: ClassGatewayPriv, Severity: SeverityHigh,
			Title:       "Create a schema or a table as the gateway",
			Description: "The gateway must own nothing and create nothing: no CREATE on the database or on any schema.",
			Action:      "RESET ROLE; CREATE SCHEMA bh_isotest_gw; CREATE TABLE public.bh_isotest_gw (x int)",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				for _, s := range []string{"CREATE SCHEMA bh_isotest_gw", "CREATE TABLE public.bh_isotest_gw (x int)"} {
					if _, err := e.runAs(ctx, e.a, "RESET ROLE", s); err == nil {
						return observed(Write, "succeeded (rolled back by the harness): %s", s)
					} else if harnessBroken(err) {
						return failed(err)
					}
				}
				return observed(Blocked, "CREATE SCHEMA and CREATE TABLE refused")
			},
		},
		&Attack{
			ID: "PRIV-003", Class: ClassGatewayPriv, Severity: SeverityCritical,
			Title:       "Grant the victim's role or the attacker's privileges to someone else",
			Description: "Neither the tenant role nor the gateway holds ADMIN OPTION on tenant roles or grant options on tables; a GRANT without them only warns, so the harness checks the effect.",
			Action:      "GRANT <B role> TO <A role>; GRANT SELECT ON bh_isotest_canary TO PUBLIC; then check has_table_privilege",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "GRANT SELECT ON "+e.a.table()+" TO PUBLIC",
					"SELECT has_table_privilege('public', "+quoteLit(e.a.table())+", 'SELECT')")
				if err == nil && strings.TrimSpace(out) == "true" {
					return observed(Write, "GRANT SELECT ... TO PUBLIC took effect")
				}
				for _, pre := range []string{"SELECT 1", "RESET ROLE"} {
					if _, err := e.runAs(ctx, e.a, pre, "GRANT "+e.b.role()+" TO "+e.a.role()); err == nil {
						return observed(Write, "GRANT <B role> TO <A role> succeeded after %s", pre)
					}
				}
				return observed(Blocked, "GRANT had no effect or was refused")
			},
		},
		&Attack{
			ID: "PRIV-004", Class: ClassGatewayPriv, Severity: SeverityHigh,
			Title:       "Change the gateway login's own settings (ALTER ROLE CURRENT_USER SET)",
			Description: "Any role may set its own per-role defaults. After RESET ROLE the tenant is the gateway, and e.g. default_transaction_read_only = on would reach every tenant's new connections. The harness sets application_name inside a transaction it rolls back.",
			Action:      "BEGIN; RESET ROLE; ALTER ROLE CURRENT_USER SET application_name = 'bh_isotest'; ROLLBACK",
			Expect:      expectShared(DoS, Blocked), Residual: residualGatewaySelf,
			run: selfAlter("ALTER ROLE CURRENT_USER SET application_name = 'bh_isotest'", "the shared login accepted ALTER ROLE CURRENT_USER SET (rolled back by the harness)"),
		},
		&Attack{
			ID: "PRIV-005", Class: ClassGatewayPriv, Severity: SeverityHigh,
			Title:       "Change the gateway login's password",
			Description: "Every role may change its own password. After RESET ROLE a tenant could lock every tenant out at the next reconnect. The harness does it inside a transaction it rolls back.",
			Action:      "BEGIN; RESET ROLE; ALTER ROLE CURRENT_USER PASSWORD '...'; ROLLBACK",
			Expect:      expectShared(DoS, Blocked), Residual: residualGatewaySelf,
			run: selfAlter("ALTER ROLE CURRENT_USER PASSWORD 'bh-isotest-rolled-back'", "the shared login accepted a new password (rolled back by the harness)"),
		},
		&Attack{
			ID: "PRIV-006", Class: ClassGatewayPriv, Severity: SeverityCritical,
			Title:       "Read password hashes and create roles as the gateway",
			Description: "pg_authid is superuser-only; CREATE ROLE needs CREATEROLE.",
			Action:      "RESET ROLE; SELECT rolpassword FROM pg_authid; CREATE ROLE bh_isotest_evil",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				if out, err := e.runAs(ctx, e.a, "RESET ROLE", "SELECT rolname, rolpassword FROM pg_authid"); err == nil {
					return observed(LeakedData, "read pg_authid: %s", abbrev(out))
				}
				if _, err := e.runAs(ctx, e.a, "RESET ROLE", "CREATE ROLE bh_isotest_evil"); err == nil {
					return observed(Write, "created a role (rolled back by the harness)")
				}
				return observed(Blocked, "pg_authid and CREATE ROLE refused")
			},
		},
		&Attack{
			ID: "PRIV-007", Class: ClassGatewayPriv, Severity: SeverityMedium,
			Title:       "Tenant role member of another tenant role",
			Description: "A tenant runtime role must be a member of no other tenant's role (a mistaken GRANT would let one tenant read another without touching the gateway).",
			Action:      "SELECT pg_has_role(<A role>, <B role>, 'USAGE')",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT pg_has_role(current_user, "+quoteLit(e.b.t.Role)+", 'MEMBER')")
				if err != nil {
					return failed(err)
				}
				if strings.TrimSpace(out) == "true" {
					return observed(LeakedData, "the attacker's role is a member of the victim's role")
				}
				return observed(Blocked, "no membership")
			},
		},
	)
}

// selfAlter runs stmt as the login role (after RESET ROLE) inside a unit of
// work the harness discards. It is a DoS on other tenants only when that
// login also serves the victim.
func selfAlter(stmt, success string) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		out, err := e.runAs(ctx, e.a, "RESET ROLE", "SELECT pg_has_role(current_user, "+quoteLit(e.b.t.Role)+", 'MEMBER')")
		if err != nil {
			return failed(err)
		}
		if strings.TrimSpace(out) != "true" {
			return observed(Blocked, "the login role serves only the attacker's tenant; altering it affects no other tenant")
		}
		if _, err := e.runAs(ctx, e.a, "RESET ROLE", stmt); err != nil {
			return observed(Blocked, "%s", refused(err))
		}
		return observed(DoS, "%s", success)
	}
}
