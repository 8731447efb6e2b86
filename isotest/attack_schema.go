package isotest

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

func init() {
	one := func(f func(e *env) string) func(e *env) []string {
		return func(e *env) []string { return []string{f(e)} }
	}
	register(
		&Attack{
			ID: "XS-001", Class: ClassCrossSchema, Severity: SeverityCritical,
			Title:       "Read the victim's table by its qualified name",
			Description: "The plain cross-tenant read an application bug (wrong schema) would make.",
			Action:      "SELECT secret FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run:         readAttack(one(func(e *env) string { return "SELECT secret FROM " + e.b.table() })),
		},
		&Attack{
			ID: "XS-002", Class: ClassCrossSchema, Severity: SeverityCritical,
			Title:       "Insert into the victim's table",
			Description: "Cross-tenant write by qualified name.",
			Action:      "INSERT INTO <B schema>.bh_isotest_canary (secret) VALUES ('intruder')",
			Expect:      expectAll(Blocked),
			run: succeedAttack(Write, one(func(e *env) string {
				return "INSERT INTO " + e.b.table() + " (secret) VALUES ('isotest-intruder')"
			})),
		},
		&Attack{
			ID: "XS-003", Class: ClassCrossSchema, Severity: SeverityCritical,
			Title:       "Update and delete the victim's rows",
			Description: "Cross-tenant UPDATE and DELETE by qualified name.",
			Action:      "UPDATE <B schema>.bh_isotest_canary SET secret = 'x'; DELETE FROM <B schema>.bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				for _, s := range []string{"UPDATE " + e.b.table() + " SET secret = 'x'", "DELETE FROM " + e.b.table()} {
					if o := succeedAttack(Write, func(*env) []string { return []string{s} })(ctx, e); o.Outcome != Blocked || o.Err != nil {
						return o
					}
				}
				return observed(Blocked, "UPDATE and DELETE refused")
			},
		},
		&Attack{
			ID: "XS-004", Class: ClassCrossSchema, Severity: SeverityHigh,
			Title:       "DDL in the victim's schema: create, alter, drop, truncate, add a trigger",
			Description: "Tenant objects are owned by a NOLOGIN owner role, so no tenant can change another's (or its own) schema.",
			Action:      "CREATE TABLE <B>.t; ALTER TABLE <B>.bh_isotest_canary ...; TRUNCATE; DROP TABLE; CREATE TRIGGER",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				t := e.b.table()
				for _, s := range []string{
					"CREATE TABLE " + pgx.Identifier{e.b.t.Schema, "bh_isotest_trojan"}.Sanitize() + " (x int)",
					"ALTER TABLE " + t + " ADD COLUMN bh_isotest int",
					"TRUNCATE " + t,
					"DROP TABLE " + t,
					"CREATE TRIGGER bh_isotest BEFORE INSERT ON " + t + " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
				} {
					if o := succeedAttack(Write, func(*env) []string { return []string{s} })(ctx, e); o.Outcome != Blocked || o.Err != nil {
						return o
					}
				}
				return observed(Blocked, "CREATE, ALTER, TRUNCATE, DROP and CREATE TRIGGER refused")
			},
		},
		&Attack{
			ID: "XS-005", Class: ClassCrossSchema, Severity: SeverityHigh,
			Title:       "Read the victim's sequence",
			Description: "nextval/currval and pg_sequences.last_value need privileges on the sequence; pg_sequences shows NULL without them.",
			Action:      "SELECT last_value FROM pg_sequences WHERE schemaname = <B schema>; SELECT nextval('<B>.bh_isotest_seq')",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT last_value FROM pg_sequences WHERE schemaname = "+quoteLit(e.b.t.Schema))
				if o := e.classifyRead(out, err); o.Outcome != Blocked || o.Err != nil {
					return o
				}
				out, err = e.runAs(ctx, e.a, "SELECT nextval("+quoteLit(e.b.sequence())+")")
				return e.classifyRead(out, err)
			},
		},
		&Attack{
			ID: "XS-006", Class: ClassCrossSchema, Severity: SeverityCritical,
			Title:       "COPY the victim's table to the client",
			Description: "COPY TO STDOUT checks the same SELECT privilege as a query.",
			Action:      "COPY <B schema>.bh_isotest_canary TO STDOUT",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				var buf strings.Builder
				err := e.do(ctx, e.a, func(db DB) error {
					_, err := db.Conn().PgConn().CopyTo(ctx, &buf, "COPY "+e.b.table()+" TO STDOUT")
					return err
				})
				return e.classifyRead(buf.String(), err)
			},
		},
		&Attack{
			ID: "XS-007", Class: ClassCrossSchema, Severity: SeverityHigh,
			Title:       "Read or write the control plane (tenant catalog, audit log)",
			Description: "The control schema is owned by the admin and closed to PUBLIC.",
			Action:      "SELECT * FROM bulkhead.tenants; DELETE FROM bulkhead.audit_log",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				cs := quoteIdent(e.prov.Config().ControlSchema)
				out, err := e.runAs(ctx, e.a, "SELECT * FROM "+cs+".tenants")
				if err == nil {
					return observed(LeakedData, "read the tenant catalog: %s", abbrev(out))
				}
				if _, err := e.runAs(ctx, e.a, "DELETE FROM "+cs+".audit_log"); err == nil {
					return observed(Write, "deleted from the audit log")
				}
				return observed(Blocked, "%s", refused(err))
			},
		},
		&Attack{
			ID: "XS-008", Class: ClassCrossSchema, Severity: SeverityMedium,
			Title:       "Rewrite the tenant's own migration ledger",
			Description: "The per-schema version table is created before the default privileges, so the tenant can read it but not forge its version.",
			Action:      "UPDATE bulkhead_migrations SET version = 9999",
			Expect:      expectAll(Blocked),
			run: succeedAttack(Write, func(e *env) []string {
				return []string{"UPDATE " + pgx.Identifier{e.a.t.Schema, "bulkhead_migrations"}.Sanitize() + " SET checksum = 'forged'"}
			}),
		},

		&Attack{
			ID: "PATH-001", Class: ClassSearchPath, Severity: SeverityHigh,
			Title:       "Plant a trojan function in schema public",
			Description: "A function in a schema on other sessions' search_path can shadow a built-in and run with the caller's rights (CVE-2018-1058). Schema public must be closed to PUBLIC.",
			Action:      "CREATE FUNCTION public.lower(text) RETURNS text ... ",
			Expect:      expectAll(Blocked),
			run: succeedAttack(Write, func(e *env) []string {
				return []string{"CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS $$ SELECT 'trojan'::text $$"}
			}),
		},
		&Attack{
			ID: "PATH-002", Class: ClassSearchPath, Severity: SeverityHigh,
			Title:       "Plant a trojan operator in schema public",
			Description: "An operator with more specific argument types than the built-in one wins resolution (CVE-2018-1058, CVE-2020-14350 style).",
			Action:      "CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)",
			Expect:      expectAll(Blocked),
			run: succeedAttack(Write, func(e *env) []string {
				return []string{"CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq)"}
			}),
		},
		&Attack{
			ID: "PATH-003", Class: ClassSearchPath, Severity: SeverityHigh,
			Title:       "Shadow a table with a temporary one (pg_temp)",
			Description: "pg_temp is searched first unless listed explicitly; bulkhead puts it last and revokes TEMP from PUBLIC.",
			Action:      "CREATE TEMP TABLE bh_isotest_canary (secret text)",
			Expect:      expectAll(Blocked),
			run: succeedAttack(Write, func(e *env) []string {
				return []string{"CREATE TEMP TABLE " + canaryTable + " (secret text)"}
			}),
		},
		&Attack{
			ID: "PATH-004", Class: ClassSearchPath, Severity: SeverityCritical,
			Title:       "Point search_path at the victim's schema",
			Description: "search_path changes name resolution, not privileges: unqualified names in the victim's schema must still be refused.",
			Action:      "SET search_path = <B schema>; SELECT secret FROM bh_isotest_canary",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"SET search_path = " + e.b.schema(), "SELECT secret FROM " + canaryTable}
			}),
		},
		&Attack{
			ID: "PATH-005", Class: ClassSearchPath, Severity: SeverityHigh,
			Title:       "Find a schema on the victim's search_path the attacker may create in",
			Description: "Checks, in the catalog, whether the attacker's role (or the gateway it can reset to) has CREATE on pg_catalog, public, or the victim's schema.",
			Action:      "SELECT has_schema_privilege(current_user, s, 'CREATE') for s in (<B schema>, public, pg_catalog), before and after RESET ROLE",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				q := "SELECT string_agg(s, ',') FROM unnest(ARRAY[" + quoteLit(e.b.t.Schema) + ", 'public', 'pg_catalog']) s WHERE has_schema_privilege(current_user, s, 'CREATE')"
				for _, pre := range []string{"SELECT 1", "RESET ROLE"} {
					out, err := e.runAs(ctx, e.a, pre, q)
					if err != nil {
						return failed(err)
					}
					if s := strings.TrimSpace(out); s != "" && s != "<nil>" {
						return observed(Write, "CREATE allowed on %s (after %s)", s, pre)
					}
				}
				return observed(Blocked, "no CREATE on the victim's schema, public or pg_catalog, as the tenant or the gateway")
			},
		},
	)
}
