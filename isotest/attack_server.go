package isotest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

const residualNotify = "LISTEN and NOTIFY have no privileges in PostgreSQL: any session of the database can listen on, or send to, any channel whose name it knows or guesses. Never put tenant data in notification payloads (send an opaque event and let the tenant read through its own connection), and do not trust a notification's origin."

const residualLargeObject = "Large objects live outside schemas, and creating one is allowed to PUBLIC by default. A tenant can store data the schema quota does not see (provision.Purge removes it with the tenant's role). Revoke lo_create, lo_creat, lo_from_bytea and lo_import from PUBLIC (needs a superuser) if tenants run arbitrary SQL; their OIDs and owners are listed in pg_largeobject_metadata to everyone."

func init() {
	register(
		&Attack{
			ID: "NOTIFY-001", Class: ClassNotify, Severity: SeverityHigh,
			Title:       "Listen on the victim's channel and receive its notification payload",
			Description: "The attacker LISTENs on a channel the victim uses (here named after the victim's schema, which the catalog shows) and waits for the victim's NOTIFY.",
			Action:      "A: LISTEN <B schema>; B: SELECT pg_notify('<B schema>', '<canary>'); A waits",
			Expect:      map[string]Outcome{ModeSessionRole: LeakedData, ModeTxLocal: NotApplicable, ModeTenantLogin: LeakedData}, Residual: residualNotify,
			run: func(ctx context.Context, e *env) observation {
				if e.transactional() {
					return observed(NotApplicable, "every unit of work is one transaction and notifications are delivered between transactions, so a tenant cannot wait for one")
				}
				ch := e.b.t.Schema
				got := make(chan string, 1)
				release, err := e.hold(ctx, e.a, func(db DB) error {
					_, err := db.Exec(ctx, "LISTEN "+quoteIdent(ch))
					return err
				}, func(db DB) {
					wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					defer cancel()
					if n, err := db.Conn().WaitForNotification(wctx); err == nil {
						got <- n.Payload
					}
					close(got)
					_, _ = db.Exec(ctx, "UNLISTEN *")
				})
				if err != nil {
					return failed(err)
				}
				nerr := e.keep(ctx, e.b, func(db DB) error {
					_, err := db.Exec(ctx, "SELECT pg_notify($1, $2)", ch, e.b.notify)
					return err
				})
				_ = release()
				if nerr != nil {
					return failed(nerr)
				}
				if p := <-got; p != "" {
					if p == e.b.notify {
						return observed(LeakedData, "received the victim's notification payload %s", p)
					}
					return observed(Blocked, "received an unrelated notification")
				}
				return observed(Blocked, "no notification reached the attacker")
			},
		},
		&Attack{
			ID: "NOTIFY-002", Class: ClassNotify, Severity: SeverityMedium,
			Title:       "Send a forged notification on the victim's channel",
			Description: "NOTIFY needs no privilege: a tenant can inject events into channels another tenant (or the application) listens on.",
			Action:      "B: LISTEN <B schema>; A: NOTIFY <B schema>, 'forged'",
			Expect:      expectAll(Write), Residual: residualNotify,
			run: func(ctx context.Context, e *env) observation {
				ch := e.b.t.Schema
				forged := "bh-isotest-forged-" + randomLower(8)
				if e.transactional() {
					if err := e.keep(ctx, e.a, func(db DB) error {
						_, err := db.Exec(ctx, "SELECT pg_notify($1, $2)", ch, forged)
						return err
					}); err != nil {
						return observed(Blocked, "%s", refused(err))
					}
					return observed(Write, "the database accepted a notification on the victim's channel (no listener can be held in this mode to confirm delivery)")
				}
				got := make(chan string, 1)
				release, err := e.hold(ctx, e.b, func(db DB) error {
					_, err := db.Exec(ctx, "LISTEN "+quoteIdent(ch))
					return err
				}, func(db DB) {
					wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					defer cancel()
					if n, err := db.Conn().WaitForNotification(wctx); err == nil {
						got <- n.Payload
					}
					close(got)
					_, _ = db.Exec(ctx, "UNLISTEN *")
				})
				if err != nil {
					return failed(err)
				}
				nerr := e.keep(ctx, e.a, func(db DB) error {
					_, err := db.Exec(ctx, "SELECT pg_notify($1, $2)", ch, forged)
					return err
				})
				_ = release()
				if nerr != nil {
					return observed(Blocked, "%s", refused(nerr))
				}
				if p := <-got; p == forged {
					return observed(Write, "the victim received the attacker's forged notification")
				}
				return observed(Blocked, "the victim received nothing from the attacker")
			},
		},

		&Attack{
			ID: "NOTIFY-003", Class: ClassNotify, Severity: SeverityMedium,
			Title:       "Discover the channels the victim listens on",
			Description: "Channel names are not in any catalog: pg_listening_channels() shows only the caller's own, and pg_stat_activity hides other logins' LISTEN statements from the tenant role.",
			Action:      "B: LISTEN <canary channel> and keep the session; A: SELECT pg_listening_channels(); SELECT query FROM pg_stat_activity",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				release, err := e.hold(ctx, e.b, func(db DB) error {
					_, err := db.Exec(ctx, "LISTEN "+quoteIdent(e.b.notify))
					return err
				}, func(db DB) { _, _ = db.Exec(ctx, "UNLISTEN *") })
				if err != nil {
					return failed(err)
				}
				defer release() //nolint:errcheck // best effort
				out, err := e.runAs(ctx, e.a, "SELECT string_agg(c, ' ') FROM pg_listening_channels() c UNION ALL SELECT string_agg(query, ' ') FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
				return e.classifyRead(out, err)
			},
		},
		&Attack{
			ID: "NOTIFY-004", Class: ClassNotify, Severity: SeverityLow,
			Title:       "Watch the shared notification queue fill (pg_notification_queue_usage)",
			Description: "The notification queue is shared by the whole cluster; its fill level shows that some session sends notifications that a slow listener has not consumed.",
			Action:      "SELECT pg_notification_queue_usage()",
			Expect:      expectAll(SideChannel), Residual: residualNotify,
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT pg_notification_queue_usage()")
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				return observed(SideChannel, "the shared queue's usage is readable (%s)", strings.TrimSpace(out))
			},
		},
		&Attack{
			ID: "LO-001", Class: ClassLargeObject, Severity: SeverityCritical,
			Title:       "Read the victim's large object",
			Description: "Large objects have owners and ACLs since PostgreSQL 9.0; lo_compat_privileges = on would disable the checks.",
			Action:      "SELECT convert_from(lo_get(<B's large object>), 'UTF8')",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				if e.b.loOID == 0 {
					return observed(Blocked, "the victim could not create a large object (creation revoked)")
				}
				out, err := e.runAs(ctx, e.a, fmt.Sprintf("SELECT convert_from(lo_get(%d), 'UTF8')", e.b.loOID))
				return e.classifyRead(out, err)
			},
		},
		&Attack{
			ID: "LO-002", Class: ClassLargeObject, Severity: SeverityCritical,
			Title:       "Overwrite or unlink the victim's large object",
			Description: "Writing or unlinking needs ownership or UPDATE on the large object.",
			Action:      "SELECT lo_put(<oid>, 0, 'x'); SELECT lo_unlink(<oid>)",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				if e.b.loOID == 0 {
					return observed(Blocked, "the victim could not create a large object (creation revoked)")
				}
				for _, s := range []string{fmt.Sprintf("SELECT lo_put(%d, 0, 'x')", e.b.loOID), fmt.Sprintf("SELECT lo_unlink(%d)", e.b.loOID)} {
					if _, err := e.runAs(ctx, e.a, s); err == nil {
						return observed(Write, "succeeded (rolled back by the harness): %s", s)
					}
				}
				return observed(Blocked, "lo_put and lo_unlink refused")
			},
		},
		&Attack{
			ID: "LO-003", Class: ClassLargeObject, Severity: SeverityLow,
			Title:       "List other tenants' large objects",
			Description: "pg_largeobject_metadata (OIDs, owners) is readable by every role.",
			Action:      "SELECT oid, lomowner::regrole FROM pg_largeobject_metadata",
			Expect:      expectAll(LeakedMetadata), Residual: residualLargeObject,
			run: func(ctx context.Context, e *env) observation {
				if e.b.loOID == 0 {
					return observed(Blocked, "the victim could not create a large object (creation revoked)")
				}
				out, err := e.runAs(ctx, e.a, "SELECT oid, lomowner::regrole FROM pg_largeobject_metadata")
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				if strings.Contains(out, fmt.Sprint(e.b.loOID)) {
					return observed(LeakedMetadata, "listed the victim's large object %d and its owner", e.b.loOID)
				}
				return observed(Blocked, "the victim's large object is not listed")
			},
		},
		&Attack{
			ID: "LO-004", Class: ClassLargeObject, Severity: SeverityMedium,
			Title:       "Create a large object outside the tenant's schema",
			Description: "A large object is database-wide storage outside the tenant's schema (provision.Purge removes it with DROP OWNED).",
			Action:      "SELECT lo_from_bytea(0, '...')",
			Expect:      expectAll(Write), Residual: residualLargeObject,
			run: func(ctx context.Context, e *env) observation {
				if e.a.loOID != 0 {
					return observed(Write, "created large object %d (unlinked by the harness)", e.a.loOID)
				}
				_, err := e.runAs(ctx, e.a, "SELECT lo_from_bytea(0, 'x')")
				if err == nil {
					return observed(Write, "created a large object (rolled back by the harness)")
				}
				return observed(Blocked, "%s", refused(err))
			},
		},
		&Attack{
			ID: "LO-005", Class: ClassLargeObject, Severity: SeverityCritical,
			Title:       "Read pg_largeobject directly",
			Description: "The table behind large objects is readable by superusers only.",
			Action:      "SELECT data FROM pg_largeobject",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"SELECT convert_from(data, 'UTF8') FROM pg_largeobject"}
			}),
		},
	)

	// Server files and programs: each is tried as the tenant role and, after
	// RESET ROLE, as the login role.
	for _, f := range []struct {
		id, title, desc, sql string
		kind                 Outcome
	}{
		{"FILE-001", "Run a server program with COPY ... TO PROGRAM", "COPY TO/FROM PROGRAM runs a shell command as the server's OS user; only superusers and pg_execute_server_program may (the CVE-2019-9193 debate).",
			"COPY (SELECT 1) TO PROGRAM 'id'", Write},
		{"FILE-002", "Read a server file with COPY FROM a file", "COPY FROM a server file needs pg_read_server_files.",
			"COPY bh_isotest_canary (secret) FROM '/etc/passwd'", LeakedData},
		{"FILE-003", "Read a server file with pg_read_file", "pg_read_file and pg_read_binary_file are superuser-only by default.",
			"SELECT pg_read_file('postgresql.conf')", LeakedData},
		{"FILE-004", "List server directories with pg_ls_dir and pg_stat_file", "Directory listing functions are superuser-only by default.",
			"SELECT pg_ls_dir('.')", LeakedMetadata},
		{"FILE-005", "Import a server file as a large object (lo_import)", "Server-side lo_import needs superuser or pg_read_server_files.",
			"SELECT lo_import('/etc/passwd')", LeakedData},
		{"FILE-006", "Install an extension that reaches files or other databases", "CREATE EXTENSION needs CREATE on the database (dblink, file_fdw, adminpack would open new paths).",
			"CREATE EXTENSION IF NOT EXISTS dblink", Write},
		{"FILE-007", "Read server paths and settings reserved to superusers", "data_directory, config_file and hba_file need pg_read_all_settings.",
			"SELECT current_setting('data_directory'), current_setting('hba_file')", LeakedMetadata},
		{"FILE-008", "Load a shared library", "LOAD of an arbitrary library is superuser-only.",
			"LOAD '/tmp/bh_isotest_nonexistent.so'", Write},
	} {
		f := f
		register(&Attack{
			ID: f.id, Class: ClassServerFiles, Severity: SeverityCritical, Title: f.title, Description: f.desc,
			Action: f.sql + " (as the tenant, then after RESET ROLE)", Expect: expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				var last error
				for _, pre := range []string{"SELECT 1", "RESET ROLE"} {
					_, err := e.runAs(ctx, e.a, pre, f.sql)
					if err == nil {
						return observed(f.kind, "succeeded after %s: %s", pre, f.sql)
					}
					if harnessBroken(err) {
						return failed(err)
					}
					last = err
				}
				return observed(Blocked, "%s", refused(last))
			},
		})
	}
}
