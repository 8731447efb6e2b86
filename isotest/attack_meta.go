package isotest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const residualCatalog = "Every role can read PostgreSQL's shared catalog (pg_catalog): the names of schemas, tables, columns and roles, comments, column defaults and planner row estimates of other tenants. No privilege hides them inside one database. bulkhead names schemas and roles after random keys, never tenant IDs; keep tenant data out of comments and defaults, or give such tenants their own database."

const residualActivity = "Database-wide activity (lock keys in pg_locks, statistics counters) is visible to every role; a tenant can infer that others are active and when, not what they read or wrote. Revoking the statistics views from PUBLIC (superuser) narrows it; pg_locks and pg_class estimates cannot be hidden."

// hold runs fn as p on a connection it keeps until release is called, so
// other work runs concurrently on other connections. ready is closed once fn
// has run; err reports fn's or the checkout's error after release.
func (e *env) hold(ctx context.Context, p *party, fn func(DB) error, after func(DB)) (release func() error, err error) {
	ready := make(chan error, 1)
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- e.keep(ctx, p, func(db DB) error {
			err := fn(db)
			ready <- err
			if err != nil {
				return err
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
			if after != nil {
				after(db)
			}
			return nil
		})
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-result
			return nil, err
		}
	case err := <-result:
		if err == nil {
			err = fmt.Errorf("the unit of work ended early")
		}
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once bool
	return func() error {
		if once {
			return nil
		}
		once = true
		close(done)
		return <-result
	}, nil
}

func init() {
	register(
		&Attack{
			ID: "META-001", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "List other tenants' schemas, tables and columns in the catalog",
			Description: "pg_namespace, pg_class and pg_attribute are readable by every role.",
			Action:      "SELECT nspname, relname, attname FROM pg_namespace JOIN pg_class ... WHERE nspname = <B schema>",
			Expect:      expectAll(LeakedMetadata), Residual: residualCatalog,
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT n.nspname, c.relname, a.attname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 WHERE n.nspname = "+quoteLit(e.b.t.Schema))
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				if strings.Contains(out, canaryTable) {
					return observed(LeakedMetadata, "saw the victim's schema %s and its table and column names", e.b.t.Schema)
				}
				return observed(Blocked, "the victim's objects are not listed")
			},
		},
		&Attack{
			ID: "META-002", Class: ClassMetadata, Severity: SeverityMedium,
			Title:       "Read other tenants' table comments",
			Description: "obj_description reads pg_description, readable by every role.",
			Action:      "SELECT obj_description('<B>.bh_isotest_canary'::regclass)",
			Expect:      expectAll(LeakedMetadata), Residual: residualCatalog,
			run: readAttack(func(e *env) []string {
				return []string{"SELECT d.description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " + quoteLit(e.b.t.Schema)}
			}),
		},
		&Attack{
			ID: "META-003", Class: ClassMetadata, Severity: SeverityMedium,
			Title:       "Read other tenants' column defaults",
			Description: "pg_attrdef and pg_get_expr are readable by every role: a literal default is visible to all tenants.",
			Action:      "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = '<B>.bh_isotest_canary'::regclass",
			Expect:      expectAll(LeakedMetadata), Residual: residualCatalog,
			run: readAttack(func(e *env) []string {
				return []string{"SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = " + quoteLit(e.b.t.Schema)}
			}),
		},
		&Attack{
			ID: "META-004", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "Read other tenants' row counts from planner estimates",
			Description: "pg_class.reltuples and relpages (updated by ANALYZE and autovacuum) are readable by every role.",
			Action:      "SELECT reltuples FROM pg_class WHERE oid = '<B>.bh_isotest_canary'::regclass",
			Expect:      expectAll(SideChannel), Residual: residualActivity,
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "+quoteLit(e.b.t.Schema)+" AND c.relname = "+quoteLit(canaryTable))
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				if strings.TrimSpace(out) == strconv.Itoa(canaryRows) {
					return observed(SideChannel, "read the victim's row count %d", canaryRows)
				}
				return observed(Blocked, "no row count (%s)", strings.TrimSpace(out))
			},
		},
		&Attack{
			ID: "META-005", Class: ClassMetadata, Severity: SeverityMedium,
			Title:       "Resolve another tenant's ID to its schema and role (route_tenant as the gateway)",
			Description: "The router's catalog function is executable by the gateway. After RESET ROLE a tenant can map a known tenant ID to its schema, role, status and limits, and test whether IDs exist.",
			Action:      "RESET ROLE; SELECT * FROM bulkhead.route_tenant('<B id>')",
			Expect:      expectShared(LeakedMetadata, Blocked), Residual: "The router's catalog function route_tenant is executable by the shared gateway login. In SessionRole and TxLocal, SQL the tenant controls can RESET ROLE to that login and resolve a tenant ID it already knows to the opaque schema and role names, status and limits, or test whether an ID exists. It reveals no tenant data.",
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "RESET ROLE", "SELECT * FROM "+quoteIdent(e.prov.Config().ControlSchema)+".route_tenant("+quoteLit(string(e.b.t.ID))+")")
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				if strings.Contains(out, e.b.t.Schema) {
					return observed(LeakedMetadata, "resolved tenant %q to schema %s", e.b.t.ID, e.b.t.Schema)
				}
				return observed(Blocked, "no row")
			},
		},
		&Attack{
			ID: "META-006", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "Read other tenants' table statistics counters (pg_stat_user_tables)",
			Description: "The cumulative statistics views show every table's insert/update/delete counts and scan times to every role unless revoked (superuser; provision.Init reports it).",
			Action:      "SELECT n_tup_ins, n_live_tup, last_analyze FROM pg_stat_user_tables WHERE schemaname = <B schema>",
			Expect:      expectAll(SideChannel), Residual: residualActivity,
			run: func(ctx context.Context, e *env) observation {
				out, err := e.runAs(ctx, e.a, "SELECT relname, n_tup_ins, n_live_tup, last_analyze FROM pg_stat_user_tables WHERE schemaname = "+quoteLit(e.b.t.Schema))
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				if strings.Contains(out, canaryTable) {
					return observed(SideChannel, "read the statistics of the victim's table: %s", abbrev(out))
				}
				return observed(Blocked, "the victim's table is not listed")
			},
		},
		&Attack{
			ID: "META-007", Class: ClassMetadata, Severity: SeverityHigh,
			Title:       "Read other sessions' query text in pg_stat_activity (as the tenant role)",
			Description: "pg_stat_activity shows a session's query only to roles with the privileges of that session's login; the tenant role has none over the gateway.",
			Action:      "B runs SELECT '<canary>' and keeps its connection; A: SELECT query FROM pg_stat_activity",
			Expect:      expectAll(Blocked),
			run:         activityAttack(false),
		},
		&Attack{
			ID: "META-008", Class: ClassMetadata, Severity: SeverityHigh,
			Title:       "Read other tenants' query text in pg_stat_activity after RESET ROLE",
			Description: "All pooled sessions log in as the gateway, so the gateway may read every session's query text, literals included. Revoking pg_stat_activity and pg_stat_get_activity from PUBLIC (superuser) closes it.",
			Action:      "B runs SELECT '<canary>' and keeps its connection; A: RESET ROLE; SELECT query FROM pg_stat_activity",
			Expect:      expectShared(LeakedData, Blocked), Residual: residualSharedPool + " Revoking pg_stat_activity and pg_stat_get_activity from PUBLIC (needs a superuser; provision.Init reports it) closes this one.",
			run: activityAttack(true),
		},
		&Attack{
			ID: "META-009", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "See other tenants' advisory lock keys in pg_locks",
			Description: "pg_locks is readable by every role and shows every session's locks, advisory keys included.",
			Action:      "B holds pg_advisory_lock(<key>); A: SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory'",
			Expect:      expectAll(SideChannel), Residual: residualActivity,
			run: func(ctx context.Context, e *env) observation {
				key := strconv.FormatInt(e.b.lockKey, 10)
				release, err := e.hold(ctx, e.b, func(db DB) error {
					_, err := db.Exec(ctx, "SELECT pg_advisory_lock("+key+")")
					return err
				}, func(db DB) { _, _ = db.Exec(ctx, "SELECT pg_advisory_unlock("+key+")") })
				if err != nil {
					return failed(err)
				}
				out, qerr := e.runAs(ctx, e.a, "SELECT ((classid::bigint << 32) | objid::bigint)::text FROM pg_locks WHERE locktype = 'advisory'")
				_ = release()
				if qerr != nil {
					return observed(Blocked, "%s", refused(qerr))
				}
				if strings.Contains(out, key) {
					return observed(SideChannel, "saw the victim's advisory lock key %s", key)
				}
				return observed(Blocked, "the victim's lock key is not visible")
			},
		},
		&Attack{
			ID: "META-010", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "Observe other tenants' activity in database-wide counters (pg_stat_database)",
			Description: "pg_stat_database counts inserted tuples and commits for the whole database; a tenant can watch them move when others work.",
			Action:      "A reads pg_stat_database.tup_inserted; B inserts rows; A reads again",
			Expect:      expectAll(SideChannel), Residual: residualActivity,
			run: statDatabaseAttack,
		},
		&Attack{
			ID: "META-011", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "Existence oracle: 'permission denied' versus 'does not exist'",
			Description: "Different errors for an existing but forbidden table and a missing one tell a tenant which names exist (the catalog says so anyway).",
			Action:      "SELECT 1 FROM <B>.bh_isotest_canary; SELECT 1 FROM <B>.no_such_table",
			Expect:      expectAll(LeakedMetadata), Residual: residualCatalog,
			run: func(ctx context.Context, e *env) observation {
				_, err1 := e.runAs(ctx, e.a, "SELECT 1 FROM "+e.b.table())
				_, err2 := e.runAs(ctx, e.a, "SELECT 1 FROM "+e.b.schema()+".bh_isotest_no_such_table")
				if err1 == nil {
					return observed(LeakedData, "the victim's table was readable")
				}
				if sqlState(err1) != sqlState(err2) {
					return observed(LeakedMetadata, "existing table: SQLSTATE %s, missing table: SQLSTATE %s", sqlState(err1), sqlState(err2))
				}
				return observed(Blocked, "the same error for both (%s)", sqlState(err1))
			},
		},
		&Attack{
			ID: "META-012", Class: ClassMetadata, Severity: SeverityHigh,
			Title:       "Read other tenants' column statistics (pg_stats most common values)",
			Description: "pg_statistic holds sample values; the pg_stats view shows only columns the caller may read (CVE-2017-7484 was a leak through selectivity estimators).",
			Action:      "SELECT most_common_vals FROM pg_stats WHERE schemaname = <B schema>",
			Expect:      expectAll(Blocked),
			run: readAttack(func(e *env) []string {
				return []string{"SELECT most_common_vals::text FROM pg_stats WHERE schemaname = " + quoteLit(e.b.t.Schema)}
			}),
		},
		&Attack{
			ID: "META-013", Class: ClassMetadata, Severity: SeverityMedium,
			Title:       "Lock-wait timing oracle on the victim's table",
			Description: "If a statement waited for a lock on the victim's table before its privileges were checked, its latency (or a lock timeout) would reveal the victim's activity. Without USAGE on the victim's schema the name does not even resolve.",
			Action:      "B: LOCK TABLE bh_isotest_canary IN ACCESS EXCLUSIVE MODE (held); A: SET lock_timeout = '500ms'; SELECT 1 FROM <B>.bh_isotest_canary, timed",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				release, err := e.hold(ctx, e.b, func(db DB) error {
					if !e.transactional() {
						if _, err := db.Exec(ctx, "BEGIN"); err != nil {
							return err
						}
					}
					_, err := db.Exec(ctx, "LOCK TABLE "+e.b.table()+" IN ACCESS EXCLUSIVE MODE")
					return err
				}, func(db DB) {
					if !e.transactional() {
						_, _ = db.Exec(ctx, "ROLLBACK")
					}
				})
				if err != nil {
					return failed(err)
				}
				start := time.Now()
				_, qerr := e.runAs(ctx, e.a, "SET lock_timeout = '500ms'", "SELECT 1 FROM "+e.b.table())
				took := time.Since(start)
				_ = release()
				switch {
				case qerr == nil:
					return observed(LeakedData, "the victim's table was readable")
				case sqlState(qerr) == "55P03": // lock_not_available: it waited for B's lock
					return observed(SideChannel, "the attacker waited %s for the victim's lock (%s)", took.Round(time.Millisecond), refused(qerr))
				}
				return observed(Blocked, "refused after %s without waiting for the victim's lock (%s)", took.Round(time.Millisecond), refused(qerr))
			},
		},
		&Attack{
			ID: "META-014", Class: ClassMetadata, Severity: SeverityLow,
			Title:       "See the victim's table locks in pg_locks",
			Description: "pg_locks lists every session's relation locks to every role: a tenant sees when another tenant's tables are locked (a migration, a long transaction).",
			Action:      "B: LOCK TABLE bh_isotest_canary (held); A: SELECT relation::regclass, mode FROM pg_locks",
			Expect:      expectAll(SideChannel), Residual: residualActivity,
			run: func(ctx context.Context, e *env) observation {
				release, err := e.hold(ctx, e.b, func(db DB) error {
					if !e.transactional() {
						if _, err := db.Exec(ctx, "BEGIN"); err != nil {
							return err
						}
					}
					_, err := db.Exec(ctx, "LOCK TABLE "+e.b.table()+" IN SHARE MODE")
					return err
				}, func(db DB) {
					if !e.transactional() {
						_, _ = db.Exec(ctx, "ROLLBACK")
					}
				})
				if err != nil {
					return failed(err)
				}
				out, qerr := e.runAs(ctx, e.a, "SELECT l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "+quoteLit(e.b.t.Schema)+" AND c.relname = "+quoteLit(canaryTable))
				_ = release()
				if qerr != nil {
					return observed(Blocked, "%s", refused(qerr))
				}
				if strings.Contains(out, "ShareLock") {
					return observed(SideChannel, "saw the victim's ShareLock on its table")
				}
				return observed(Blocked, "the victim's lock is not visible")
			},
		},
	)
}

// activityAttack is META-007 (resetRole false) and META-008.
func activityAttack(resetRole bool) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		release, err := e.hold(ctx, e.b, func(db DB) error {
			_, err := queryAll(ctx, db, "SELECT "+literal(e.b.query)+"::text")
			return err
		}, nil)
		if err != nil {
			return failed(err)
		}
		defer release() //nolint:errcheck // best effort
		stmts := []string{"SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid()"}
		if resetRole {
			stmts = append([]string{"RESET ROLE"}, stmts...)
		}
		out, err := e.runAs(ctx, e.a, stmts...)
		return e.classifyRead(out, err)
	}
}

func statDatabaseAttack(ctx context.Context, e *env) observation {
	const q = "SELECT pg_stat_clear_snapshot(), (SELECT tup_inserted FROM pg_stat_database WHERE datname = current_database())"
	read := func() (int64, error) {
		var n int64
		err := e.do(ctx, e.a, func(db DB) error {
			var ignored any
			return db.QueryRow(ctx, q).Scan(&ignored, &n)
		})
		return n, err
	}
	before, err := read()
	if err != nil {
		return observed(Blocked, "%s", refused(err))
	}
	const n = 500
	if err := e.keep(ctx, e.b, func(db DB) error {
		_, err := db.Exec(ctx, "INSERT INTO "+e.b.table()+" (secret) SELECT 'filler' FROM generate_series(1, "+strconv.Itoa(n)+")")
		return err
	}); err != nil {
		return failed(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	var after int64
	for time.Now().Before(deadline) {
		if after, err = read(); err != nil {
			return failed(err)
		}
		if after-before >= n {
			return observed(SideChannel, "tup_inserted grew by %d while the victim inserted %d rows", after-before, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return observed(SideChannel, "pg_stat_database is readable (tup_inserted %d -> %d; the victim's %d rows were not flushed within 2s)", before, after, n)
}
