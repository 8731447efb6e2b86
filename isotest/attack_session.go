package isotest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// leftover describes session state the victim leaves on a pooled connection
// and how the attacker, handed the same backend next, looks for it.
type leftover struct {
	plant    func(e *env) []string // run as B, effects kept
	probe    func(e *env) string   // run as A on B's backend
	canaries func(e *env) []string // default: B's data canaries
	leak     Outcome               // default: LeakedData
}

// hygiene returns the run function of a session-state attack.
func hygiene(l leftover) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		canaries := e.b.data()
		if l.canaries != nil {
			canaries = l.canaries(e)
		}
		leak := l.leak
		if leak == "" {
			leak = LeakedData
		}
		for try := 0; try < 5; try++ {
			var pidB uint32
			err := e.keep(ctx, e.b, func(db DB) error {
				pidB = pid(db)
				for _, s := range l.plant(e) {
					if _, err := db.Exec(ctx, s); err != nil {
						return fmt.Errorf("%s: %w", abbrev(s), err)
					}
				}
				return nil
			})
			if err != nil {
				if harnessBroken(err) {
					return failed(err)
				}
				return observed(Blocked, "the victim cannot create this state (%s)", refused(err))
			}
			var out string
			var perr error
			same := false
			err = e.do(ctx, e.a, func(db DB) error {
				if pid(db) != pidB {
					return nil
				}
				same = true
				out, perr = queryAll(ctx, db, l.probe(e))
				return nil
			})
			if err != nil {
				return failed(fmt.Errorf("attacker's checkout after the victim: %w", err))
			}
			if !same {
				continue
			}
			if perr != nil {
				if harnessBroken(perr) {
					return failed(perr)
				}
				return observed(Blocked, "on the victim's former backend (pid %d) the state is gone: %s", pidB, refused(perr))
			}
			if c, ok := sawAny(out, canaries); ok {
				return observed(leak, "on the victim's former backend (pid %d) the attacker saw %s", pidB, c)
			}
			return observed(Blocked, "on the victim's former backend (pid %d) nothing of the victim remained", pidB)
		}
		return notShared(e)
	}
}

func init() {
	register(
		&Attack{
			ID: "HYG-001", Class: ClassSessionState, Severity: SeverityHigh,
			Title:       "Custom setting (GUC) left on a pooled connection",
			Description: "Applications keep per-request context in custom settings (app.user_id); RESET ALL must clear them before another tenant gets the connection.",
			Action:      "B: SET bh_isotest.secret = '<canary>'; A on the same backend: SELECT current_setting('bh_isotest.secret', true)",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string { return []string{"SET bh_isotest.secret = " + literal(e.b.guc)} },
				probe: func(e *env) string { return "SELECT current_setting('bh_isotest.secret', true)" },
			}),
		},
		&Attack{
			ID: "HYG-002", Class: ClassSessionState, Severity: SeverityCritical,
			Title:       "Role left on a pooled connection",
			Description: "A session-level SET ROLE by the victim must not survive into the attacker's checkout.",
			Action:      "B: SET ROLE <B role>; A on the same backend: SELECT current_user",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant:    func(e *env) []string { return []string{"SET ROLE " + e.b.role()} },
				probe:    func(e *env) string { return "SELECT current_user" },
				canaries: func(e *env) []string { return []string{e.b.t.Role} },
			}),
		},
		&Attack{
			ID: "HYG-003", Class: ClassSessionState, Severity: SeverityHigh,
			Title:       "search_path left on a pooled connection",
			Description: "A search_path pointing at the victim's schema would make the attacker's unqualified names resolve there.",
			Action:      "B: SET search_path = <B schema>; A on the same backend: SHOW search_path",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant:    func(e *env) []string { return []string{"SET search_path = " + e.b.schema()} },
				probe:    func(e *env) string { return "SELECT current_setting('search_path')" },
				canaries: func(e *env) []string { return []string{e.b.t.Schema} },
			}),
		},
		&Attack{
			ID: "HYG-004", Class: ClassSessionState, Severity: SeverityMedium,
			Title:       "Built-in settings left on a pooled connection (application_name, work_mem)",
			Description: "Any SET by one tenant must be reset before another tenant uses the session.",
			Action:      "B: SET application_name = '<canary>'; SET work_mem = '7777kB'; A on the same backend: SHOW both",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"SET application_name = " + literal(e.b.guc), "SET work_mem = '7777kB'"}
				},
				probe:    func(e *env) string { return "SELECT current_setting('application_name'), current_setting('work_mem')" },
				canaries: func(e *env) []string { return []string{e.b.guc, "7777kB"} },
			}),
		},
		&Attack{
			ID: "HYG-005", Class: ClassSessionState, Severity: SeverityHigh,
			Title:       "Temporary table left on a pooled connection",
			Description: "Temporary tables live as long as the session; DISCARD TEMP must drop them (and TEMP is revoked from PUBLIC anyway).",
			Action:      "B: CREATE TEMP TABLE bh_isotest_tmp AS SELECT '<canary>'; A on the same backend: SELECT * FROM pg_temp.bh_isotest_tmp",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"CREATE TEMP TABLE bh_isotest_tmp AS SELECT " + literal(e.b.temp) + "::text AS v"}
				},
				probe: func(e *env) string { return "SELECT v FROM pg_temp.bh_isotest_tmp" },
			}),
		},
		&Attack{
			ID: "HYG-006", Class: ClassSessionState, Severity: SeverityHigh,
			Title:       "Server-side prepared statement left on a pooled connection",
			Description: "Prepared statements belong to the session; DEALLOCATE ALL must remove them before another tenant can list or execute them.",
			Action:      "B: PREPARE bh_isotest_p AS SELECT '<canary>'; A on the same backend: SELECT statement FROM pg_prepared_statements; EXECUTE",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"PREPARE bh_isotest_p AS SELECT " + literal(e.b.prep) + "::text"}
				},
				probe: func(e *env) string { return "SELECT name, statement FROM pg_prepared_statements" },
			}),
		},
		&Attack{
			ID: "HYG-007", Class: ClassSessionState, Severity: SeverityCritical,
			Title:       "Holdable cursor over the victim's table left on a pooled connection",
			Description: "A cursor WITH HOLD keeps rows read with the victim's rights; CLOSE ALL must drop it before the attacker can FETCH.",
			Action:      "B: DECLARE bh_isotest_c CURSOR WITH HOLD FOR SELECT secret FROM <B table>; A on the same backend: FETCH ALL FROM bh_isotest_c",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"DECLARE bh_isotest_c CURSOR WITH HOLD FOR SELECT secret FROM " + e.b.table()}
				},
				probe: func(e *env) string { return "FETCH ALL FROM bh_isotest_c" },
			}),
		},
		&Attack{
			ID: "HYG-008", Class: ClassSessionState, Severity: SeverityHigh,
			Title:       "LISTEN registration left on a pooled connection",
			Description: "A LISTEN left by the victim would deliver the victim's notifications to the next tenant on the connection; UNLISTEN * must clear it.",
			Action:      "B: LISTEN <canary channel>; A on the same backend: SELECT pg_listening_channels()",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string { return []string{"LISTEN " + quoteIdent(e.b.notify)} },
				probe: func(e *env) string { return "SELECT pg_listening_channels()" },
			}),
		},
		&Attack{
			ID: "HYG-009", Class: ClassSessionState, Severity: SeverityMedium,
			Title:       "Session advisory lock left on a pooled connection",
			Description: "A session advisory lock taken by the victim and inherited by the attacker lets the attacker release it and break the victim's mutual exclusion; pg_advisory_unlock_all must run.",
			Action:      "B: SELECT pg_advisory_lock(<key>); A on the same backend: SELECT objid FROM pg_locks WHERE pid = pg_backend_pid()",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"SELECT pg_advisory_lock(" + strconv.FormatInt(e.b.lockKey, 10) + ")"}
				},
				probe: func(e *env) string {
					return "SELECT ((classid::bigint << 32) | objid::bigint)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
				},
				canaries: func(e *env) []string { return []string{strconv.FormatInt(e.b.lockKey, 10)} },
				leak:     Write,
			}),
		},
		&Attack{
			ID: "HYG-010", Class: ClassSessionState, Severity: SeverityCritical,
			Title:       "Replace a statement in pgx's statement cache (DEALLOCATE + PREPARE under pgx's name)",
			Description: "pgx names cached statements stmtcache_<sha256 of the SQL>. A tenant that re-prepares that name with other SQL makes the next tenant's identical query execute the tenant's SQL, if the pool keeps pgx's cache across tenants. bulkhead disables the cache and runs DEALLOCATE ALL on a tenant change.",
			Action:      "A: run Q; B: DEALLOCATE stmtcache_<sha(Q)>; PREPARE stmtcache_<sha(Q)> AS SELECT '<canary>'; A on the same backend: run Q again",
			Expect:      expectAll(Blocked),
			run:         stmtCacheAttack,
		},
		&Attack{
			ID: "HYG-011", Class: ClassSessionState, Severity: SeverityMedium,
			Title:       "Sequence state (lastval) left on a pooled connection",
			Description: "lastval() returns the last value any sequence gave the session; DISCARD SEQUENCES must clear it.",
			Action:      "B: SELECT nextval('<B>.bh_isotest_seq'); A on the same backend: SELECT lastval()",
			Expect:      expectAll(Blocked),
			run: hygiene(leftover{
				plant: func(e *env) []string {
					return []string{"SELECT setval(" + quoteLit(e.b.sequence()) + ", " + strconv.FormatInt(e.b.seq, 10) + ", false)",
						"SELECT nextval(" + quoteLit(e.b.sequence()) + ")"}
				},
				probe: func(e *env) string { return "SELECT lastval()" },
			}),
		},
		&Attack{
			ID: "HYG-012", Class: ClassSessionState, Severity: SeverityCritical,
			Title:       "Open transaction left on a pooled connection",
			Description: "A connection released inside a transaction must be closed, not reused: otherwise the attacker's statements join the victim's transaction.",
			Action:      "B: BEGIN; INSERT INTO <B table> ...; release without COMMIT; A: SELECT pg_current_xact_id_if_assigned()",
			Expect:      expectShared(Blocked, Blocked),
			run:         openTxAttack,
		},
		&Attack{
			ID: "HYG-013", Class: ClassSessionState, Severity: SeverityLow,
			Title:       "Custom setting name survives RESET ALL (existence oracle)",
			Description: "PostgreSQL keeps a custom setting's name defined for the backend's lifetime; RESET ALL and DISCARD ALL clear its value only. On the same pooled backend, current_setting(name, true) returns '' instead of NULL for a name an earlier tenant used: a guessed name can be confirmed.",
			Action:      "B: SET bh_isotest.<canary> = 'x'; A on the same backend: SELECT current_setting('bh_isotest.<canary>', true) IS NOT NULL",
			Expect:      expectShared(SideChannel, Blocked), Residual: "PostgreSQL cannot undefine a custom setting inside a session, so on a shared pooled connection a later tenant can test whether a setting name it guesses was used before (values are reset). Keep data out of custom setting names (use fixed names such as app.user_id). TenantLogin never shares a connection between tenants.",
			run: hygiene(leftover{
				plant: func(e *env) []string { return []string{"SET bh_isotest." + e.b.guc + " = 'x'"} },
				probe: func(e *env) string {
					return "SELECT CASE WHEN current_setting('bh_isotest." + e.b.guc + "', true) IS NOT NULL THEN 'defined: " + e.b.guc + "' END"
				},
				canaries: func(e *env) []string { return []string{e.b.guc} },
				leak:     SideChannel,
			}),
		},
	)
}

// stmtCacheAttack is HYG-010.
func stmtCacheAttack(ctx context.Context, e *env) observation {
	const q = "SELECT 'bh-isotest-attacker'::text AS v"
	sum := sha256.Sum256([]byte(q))
	name := "stmtcache_" + hex.EncodeToString(sum[0:24])
	run := func(db DB) (string, error) {
		var v string
		err := db.QueryRow(ctx, q).Scan(&v)
		return v, err
	}
	for try := 0; try < 5; try++ {
		var pidA uint32
		if err := e.keep(ctx, e.a, func(db DB) error {
			pidA = pid(db)
			_, err := run(db)
			return err
		}); err != nil {
			return failed(err)
		}
		planted := false
		err := e.keep(ctx, e.b, func(db DB) error {
			if pid(db) != pidA {
				return nil
			}
			planted = true
			var exists bool
			if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = $1)", name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				if _, err := db.Exec(ctx, "DEALLOCATE "+quoteIdent(name)); err != nil {
					return err
				}
			}
			_, err := db.Exec(ctx, "PREPARE "+quoteIdent(name)+" AS SELECT "+literal(e.b.prep)+"::text AS v")
			return err
		})
		if err != nil {
			return failed(err)
		}
		if !planted {
			continue
		}
		var got string
		same := false
		err = e.do(ctx, e.a, func(db DB) error {
			if pid(db) != pidA {
				return nil
			}
			same = true
			var err error
			got, err = run(db)
			return err
		})
		if !same {
			continue
		}
		if err != nil {
			return observed(Blocked, "the attacker's query failed on the shared backend instead of running the planted statement: %s", refused(err))
		}
		if got == e.b.prep {
			return observed(LeakedData, "the attacker's query returned the victim's planted result %s", got)
		}
		return observed(Blocked, "the attacker's query returned its own result %q on backend %d", got, pidA)
	}
	return notShared(e)
}

// notShared is the result of a session-state attack that never got the
// attacker onto the victim's backend: expected in TenantLogin (a pool per
// tenant), suspicious in the shared-pool modes, where it would hide leaks.
func notShared(e *env) observation {
	if e.mode == ModeTenantLogin {
		return observed(Blocked, "the attacker was never handed a backend the victim used (a pool per tenant)")
	}
	return failed(fmt.Errorf("the attacker was never handed the victim's backend in 5 tries (is the pool busy?)"))
}

// openTxAttack is HYG-012.
func openTxAttack(ctx context.Context, e *env) observation {
	if e.transactional() {
		return observed(NotApplicable, "every unit of work is a transaction that the router begins and ends")
	}
	var pidB uint32
	err := e.keep(ctx, e.b, func(db DB) error {
		pidB = pid(db)
		_, err := db.Exec(ctx, "BEGIN; INSERT INTO "+e.b.table()+" (secret) VALUES ("+literal(e.b.query)+")")
		return err
	})
	if err != nil {
		return failed(err)
	}
	var out string
	err = e.do(ctx, e.a, func(db DB) error {
		if pid(db) != pidB {
			return nil
		}
		var err error
		out, err = queryAll(ctx, db, "SELECT coalesce(pg_current_xact_id_if_assigned()::text, 'none'), current_user")
		return err
	})
	if err != nil {
		return failed(err)
	}
	if out == "" {
		return observed(Blocked, "the connection released inside a transaction (pid %d) was not handed to the attacker", pidB)
	}
	if !strings.HasPrefix(out, "none") {
		return observed(Write, "the attacker joined the victim's open transaction on pid %d: %s", pidB, strings.TrimSpace(out))
	}
	return observed(Blocked, "the attacker got pid %d outside any transaction", pidB)
}
