package isotest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

const residualTenantSQL = "PostgreSQL lets every session raise its own work_mem and lift its own statement_timeout, and has no per-role CPU or I/O quota. A tenant that runs arbitrary SQL can therefore use more than its share, in every mode, until the router's per-tenant checkout cap stops it from taking more connections. Keep tenant input out of SQL text, or watch per-tenant load."

// hostileID tries to route with id and reports whether it reached a tenant.
func hostileID(ctx context.Context, e *env, id tenancy.ID) observation {
	var user string
	err := e.scope.Do(ctx, id, func(db DB) error {
		return db.QueryRow(ctx, "SELECT current_user").Scan(&user)
	})
	switch {
	case err == nil:
		return observed(LeakedData, "the ID %q was routed to role %s", abbrev(string(id)), user)
	case errors.Is(err, tenancy.ErrInvalidID):
		return observed(Blocked, "rejected before any SQL: %v", err)
	case errors.Is(err, tenancy.ErrNotFound):
		return observed(Blocked, "no such tenant: %v", err)
	}
	return observed(Blocked, "refused: %v", err)
}

func init() {
	id := func(idn, title, desc, action string, mk func(e *env) []tenancy.ID) *Attack {
		return &Attack{ID: idn, Class: ClassIdentifier, Severity: SeverityCritical, Title: title, Description: desc, Action: action,
			Expect: expectAll(Blocked), run: func(ctx context.Context, e *env) observation {
				var ev []string
				for _, id := range mk(e) {
					o := hostileID(ctx, e, id)
					if o.Outcome != Blocked || o.Err != nil {
						return o
					}
					ev = append(ev, o.Evidence)
				}
				return observed(Blocked, "%s", strings.Join(ev, "; "))
			}}
	}
	register(
		id("IDENT-001", "Tenant ID longer than 63 bytes (truncation collision)",
			"PostgreSQL truncates identifiers to 63 bytes; an ID that truncates to another tenant's name must never route there. bulkhead rejects IDs over 63 bytes and never uses IDs as identifiers.",
			"route '<B id>' + 'x' * (64 - len) ", func(e *env) []tenancy.ID {
				return []tenancy.ID{e.b.t.ID + tenancy.ID(strings.Repeat("x", 64-len(e.b.t.ID))), e.b.t.ID + tenancy.ID(strings.Repeat("x", 200))}
			}),
		id("IDENT-002", "Tenant ID with a quote and SQL (identifier injection)",
			"An ID spliced into SQL could close a quoted identifier and append statements.",
			`route '<B id>"; SET ROLE ...; --'`, func(e *env) []tenancy.ID {
				return []tenancy.ID{e.b.t.ID + tenancy.ID(`"; SET ROLE `+quoteIdent(e.b.t.Role)+`; --`), e.b.t.ID + "'; --", tenancy.ID(e.b.t.Role)}
			}),
		id("IDENT-003", "Tenant ID with a NUL byte",
			"C strings end at NUL: '<B id>\\x00suffix' could be read as B's ID by code that truncates.",
			`route '<B id>\x00suffix'`, func(e *env) []tenancy.ID { return []tenancy.ID{e.b.t.ID + "\x00suffix", "\x00" + e.b.t.ID} }),
		id("IDENT-004", "Tenant ID differing only in case or by a Unicode look-alike",
			"Case folding or Unicode normalization must not map a different ID onto the victim.",
			"route upper('<B id>') and '<B id>' with a fullwidth first letter", func(e *env) []tenancy.ID {
				id := string(e.b.t.ID)
				return []tenancy.ID{tenancy.ID(strings.ToUpper(id)), tenancy.ID(string(rune(0xFF41+rune(id[0]-'a'))) + id[1:])}
			}),
		id("IDENT-005", "Tenant ID with trailing whitespace or a Unicode homoglyph",
			"'<B id> ' and '<B id>' with a homoglyph must be rejected, not trimmed or normalized onto B.",
			"route '<B id> ', ' <B id>', '<B id>\n' and '<B id>' with a Cyrillic 'і'", func(e *env) []tenancy.ID {
				return []tenancy.ID{e.b.t.ID + " ", " " + e.b.t.ID, e.b.t.ID + "\n", e.b.t.ID + "\u0456"}
			}),
		&Attack{
			ID: "IDENT-006", Class: ClassIdentifier, Severity: SeverityHigh,
			Title:       "Provision tenants with hostile IDs",
			Description: "Provisioning must reject over-long, quoted, NUL-carrying and non-ASCII IDs before any SQL runs, so no two tenants can collide in a truncated name.",
			Action:      "Provisioner.Create(64-byte ID / quote / NUL / 'İ')",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				for _, bad := range []tenancy.ID{
					tenancy.ID("isotest-" + strings.Repeat("x", 56)),
					`isotest-"; DROP SCHEMA public; --`,
					"isotest-nul\x00x",
					"isotest-\u0130",
				} {
					_, err := e.prov.Create(ctx, bad, nil)
					if err == nil {
						_ = removeTenant(context.WithoutCancel(ctx), e.prov, bad)
						return observed(Write, "created a tenant with ID %q (removed by the harness)", bad)
					}
					if !errors.Is(err, tenancy.ErrInvalidID) {
						return observed(Blocked, "refused, but not as an invalid ID: %v", err)
					}
				}
				return observed(Blocked, "all hostile IDs rejected with tenancy.ErrInvalidID")
			},
		},
		&Attack{
			ID: "IDENT-007", Class: ClassIdentifier, Severity: SeverityMedium,
			Title:       "Tenant identity in schema and role names",
			Description: "Schema and role names are visible to every tenant (META-001); they must not reveal the tenant's business ID, and must fit in 63 bytes so PostgreSQL never truncates them.",
			Action:      "compare <B schema>, <B role> with <B id>; check lengths",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				b := e.b.t
				switch {
				case len(b.Schema) > 63 || len(b.Role) > 63:
					return observed(Write, "name longer than 63 bytes: %s / %s", b.Schema, b.Role)
				case strings.Contains(b.Schema, string(b.ID)) || strings.Contains(b.Role, string(b.ID)):
					return observed(LeakedMetadata, "schema %s or role %s contains the tenant ID %q", b.Schema, b.Role, b.ID)
				case b.Schema == e.a.t.Schema || b.Role == e.a.t.Role:
					return observed(Write, "the two tenants share a name")
				}
				return observed(Blocked, "names are opaque keys (%s), %d bytes", b.Schema, len(b.Schema))
			},
		},

		&Attack{
			ID: "DOS-001", Class: ClassResource, Severity: SeverityHigh,
			Title:       "Statement timeout in force on the tenant's connection",
			Description: "Without a statement timeout one tenant's runaway query holds a pooled connection forever. The router applies Config.StatementTimeout or the tenant's Limits.StatementTimeout at every switch.",
			Action:      "SHOW statement_timeout; SELECT pg_sleep(timeout + 0.3s)",
			Expect:      expectAll(Blocked),
			run: func(ctx context.Context, e *env) observation {
				var ms int64
				if err := e.do(ctx, e.a, func(db DB) error {
					return db.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'").Scan(&ms)
				}); err != nil {
					return failed(err)
				}
				if ms == 0 {
					return observed(DoS, "statement_timeout is 0 (unbounded) on the tenant's connection")
				}
				if ms > 3000 {
					return observed(Blocked, "statement_timeout is %dms (not exercised: longer than 3s)", ms)
				}
				_, err := e.runAs(ctx, e.a, fmt.Sprintf("SELECT pg_sleep(%f)", float64(ms)/1000+0.3))
				if sqlState(err) == "57014" {
					return observed(Blocked, "pg_sleep cancelled by statement_timeout = %dms", ms)
				}
				return observed(DoS, "pg_sleep longer than statement_timeout = %dms was not cancelled (%v)", ms, err)
			},
		},
		&Attack{
			ID: "DOS-002", Class: ClassResource, Severity: SeverityMedium,
			Title:       "Tenant lifts its own statement timeout",
			Description: "statement_timeout is a user setting: SQL the tenant controls can SET it to 0.",
			Action:      "SET statement_timeout = 0",
			Expect:      expectAll(DoS), Residual: residualTenantSQL,
			run: succeedAttack(DoS, func(*env) []string { return []string{"SET statement_timeout = 0"} }),
		},
		&Attack{
			ID: "DOS-003", Class: ClassResource, Severity: SeverityHigh,
			Title:       "Exhaust the pool with one tenant's checkouts",
			Description: "ALTER ROLE ... CONNECTION LIMIT does not apply after SET ROLE, so the router caps each tenant's concurrent checkouts; the victim must still get a connection while the attacker holds all it can.",
			Action:      "A holds as many connections as it is given; B then checks out one",
			Expect:      expectAll(Blocked),
			run:         checkoutCapAttack,
		},
		&Attack{
			ID: "DOS-004", Class: ClassResource, Severity: SeverityMedium,
			Title:       "Hog the victim's advisory lock key",
			Description: "Advisory locks are database-wide and need no privilege: a tenant that takes the key another tenant uses (visible in pg_locks, META-009) blocks it.",
			Action:      "A: SELECT pg_advisory_lock(<B's key>); B: SELECT pg_try_advisory_xact_lock(<key>)",
			Expect:      expectAll(DoS), Residual: "Advisory locks have no privileges in PostgreSQL. Derive lock keys from the tenant's schema (so tenants cannot collide by accident) and do not rely on them for isolation between tenants.",
			run: func(ctx context.Context, e *env) observation {
				key := strconv.FormatInt(e.b.lockKey, 10)
				release, err := e.hold(ctx, e.a, func(db DB) error {
					_, err := db.Exec(ctx, "SELECT pg_advisory_lock("+key+")")
					return err
				}, func(db DB) { _, _ = db.Exec(ctx, "SELECT pg_advisory_unlock("+key+")") })
				if err != nil {
					return observed(Blocked, "%s", refused(err))
				}
				out, berr := e.runAs(ctx, e.b, "SELECT pg_try_advisory_xact_lock("+key+")")
				_ = release()
				if berr != nil {
					return failed(berr)
				}
				if strings.TrimSpace(out) == "false" {
					return observed(DoS, "the victim could not take its own lock key %s while the attacker held it", key)
				}
				return observed(Blocked, "the victim took its lock")
			},
		},
		&Attack{
			ID: "DOS-005", Class: ClassResource, Severity: SeverityMedium,
			Title:       "Raise work_mem and maintenance_work_mem",
			Description: "Memory settings are user settings; a tenant can raise them and push the server toward swapping or the OOM killer.",
			Action:      "SET work_mem = '1GB'; SET maintenance_work_mem = '1GB'",
			Expect:      expectAll(DoS), Residual: residualTenantSQL,
			run: succeedAttack(DoS, func(*env) []string {
				return []string{"SET work_mem = '1GB'", "SET maintenance_work_mem = '1GB'"}
			}),
		},
		&Attack{
			ID: "DOS-006", Class: ClassResource, Severity: SeverityMedium,
			Title:       "Unbounded temporary files (temp_file_limit)",
			Description: "A sort or hash that spills writes temporary files, even without TEMP privilege; temp_file_limit (superuser-set, tenants cannot raise it) bounds them per session.",
			Action:      "SHOW temp_file_limit; SET temp_file_limit = -1",
			Expect:      expectAll(DoS), Residual: "Set temp_file_limit (ALTER DATABASE ... SET temp_file_limit, as a superuser) to bound the disk one session can fill; tenants cannot raise it.",
			run: func(ctx context.Context, e *env) observation {
				if _, err := e.runAs(ctx, e.a, "SET temp_file_limit = -1"); err == nil {
					return observed(DoS, "the tenant could lift temp_file_limit")
				}
				out, err := e.runAs(ctx, e.a, "SELECT current_setting('temp_file_limit')")
				if err != nil {
					return failed(err)
				}
				if strings.TrimSpace(out) == "-1" {
					return observed(DoS, "temp_file_limit is -1 (unbounded temporary files per session)")
				}
				return observed(Blocked, "temp_file_limit = %s and the tenant cannot raise it", strings.TrimSpace(out))
			},
		},

		&Attack{
			ID: "PROTO-001", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Quote injection through pgx's simple protocol interpolation",
			Description: "With QueryExecModeSimpleProtocol pgx interpolates arguments into the SQL text client-side; a quote in a value must stay inside the literal.",
			Action:      "QueryRow(\"SELECT $1::text\", QueryExecModeSimpleProtocol, \"x'; SET ROLE <B role>; SELECT 'y\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				payload := "x'; SET ROLE " + quoteIdent(e.b.t.Role) + "; SELECT 'y"
				var v string
				err := db.QueryRow(ctx, "SELECT $1::text", pgx.QueryExecModeSimpleProtocol, payload).Scan(&v)
				if err == nil && v != payload {
					return "", fmt.Errorf("the value came back altered: %q", v)
				}
				return v, err
			}),
		},
		&Attack{
			ID: "PROTO-002", Class: ClassProtocol, Severity: SeverityHigh,
			Title:       "Stacked statements through the extended protocol",
			Description: "The extended protocol parses exactly one statement; a second one appended to parameterized SQL must be refused by the server.",
			Action:      "Exec(\"SELECT $1::text; SET ROLE <B role>\", \"x\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				_, err := db.Exec(ctx, "SELECT $1::text; SET ROLE "+quoteIdent(e.b.t.Role), "x")
				if sqlState(err) == "42601" {
					return "", errProtoRefused{err}
				}
				return "", err
			}),
		},
		&Attack{
			ID: "PROTO-003", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Backslash injection after SET standard_conforming_strings = off",
			Description: "With standard_conforming_strings off a backslash escapes the closing quote, so client-side quoting that doubles quotes breaks; pgx refuses the simple protocol unless the setting is on.",
			Action:      "SET standard_conforming_strings = off; QueryRow(simple protocol, \"\\\\'; SET ROLE <B role>; --\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				if _, err := db.Exec(ctx, "SET standard_conforming_strings = off"); err != nil {
					return "", err
				}
				var v string
				err := db.QueryRow(ctx, "SELECT $1::text", pgx.QueryExecModeSimpleProtocol, `\'; SET ROLE `+quoteIdent(e.b.t.Role)+`; --`).Scan(&v)
				if err != nil && sqlState(err) == "" {
					return "", errProtoRefused{err}
				}
				return v, err
			}),
		},
		&Attack{
			ID: "PROTO-004", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Multibyte quote injection after SET client_encoding = 'GBK' (CVE-2006-2314 class)",
			Description: "In GBK/SJIS a multibyte character can end in 0x5c; client-side escaping unaware of the encoding lets a quote escape. pgx refuses the simple protocol unless client_encoding is UTF8.",
			Action:      "SET client_encoding = 'GBK'; QueryRow(simple protocol, \"\\xbf'; SET ROLE <B role>; --\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				if _, err := db.Exec(ctx, "SET client_encoding = 'GBK'"); err != nil {
					return "", err
				}
				defer db.Exec(ctx, "SET client_encoding = 'UTF8'") //nolint:errcheck // best effort
				var v string
				err := db.QueryRow(ctx, "SELECT $1::text", pgx.QueryExecModeSimpleProtocol, "\xbf'; SET ROLE "+quoteIdent(e.b.t.Role)+"; --").Scan(&v)
				if err != nil && sqlState(err) == "" {
					return "", errProtoRefused{err}
				}
				return v, err
			}),
		},
		&Attack{
			ID: "PROTO-005", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Line-comment injection through a negative number in simple protocol (CVE-2024-27289)",
			Description: "pgx before v5.5.4 rendered '-$1' with $1 = -1 as '--1', starting a comment that swallowed the next placeholder's opening quote; a newline in that string then ran the attacker's SQL.",
			Action:      "Exec(\"SELECT -$1, $2\", simple protocol, -1, \"\\n; SET ROLE <B role>; --\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				_, err := db.Exec(ctx, "SELECT -$1::int, $2::text", pgx.QueryExecModeSimpleProtocol, -1, "\n; SET ROLE "+quoteIdent(e.b.t.Role)+"; --")
				return "", err
			}),
		},
		&Attack{
			ID: "PROTO-007", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Stacked statements through Exec without arguments (pgx uses the simple protocol)",
			Description: "pgx sends a query with no arguments through the simple protocol, which runs every statement in the string: SQL built by concatenation and run with Exec(sql) can carry a SET ROLE. Use arguments, never concatenation.",
			Action:      "Exec(\"SELECT 1; SET ROLE <B role>\") with no arguments, then SELECT current_user",
			Expect:      expectShared(LeakedData, Blocked), Residual: residualSharedPool,
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				_, err := db.Exec(ctx, "SELECT 1; SET ROLE "+quoteIdent(e.b.t.Role))
				return "", err
			}),
		},
		&Attack{
			ID: "PROTO-008", Class: ClassProtocol, Severity: SeverityCritical,
			Title:       "Placeholder inside a dollar-quoted literal in simple protocol (CVE-2026-41889)",
			Description: "pgx before v5.9.2 substituted placeholders inside dollar-quoted string literals in simple-protocol SQL, so a value containing the closing tag ended the literal and ran the attacker's SQL (GHSA-j88v-2chj-qfwx).",
			Action:      "Exec(\"SELECT $tag$ $1 $tag$, $1::text\", simple protocol, \"$tag$; SET ROLE <B role>; --\")",
			Expect:      expectAll(Blocked),
			run: protoAttack(func(ctx context.Context, e *env, db DB) (string, error) {
				_, err := db.Exec(ctx, "SELECT $tag$ $1 $tag$, $1::text", pgx.QueryExecModeSimpleProtocol, "$tag$; SET ROLE "+quoteIdent(e.b.t.Role)+"; --")
				return "", err
			}),
		},
		&Attack{
			ID: "PROTO-006", Class: ClassProtocol, Severity: SeverityHigh,
			Title:       "pgx version with known SQL-injection or protocol CVEs",
			Description: "pgx v5 before v5.5.4 is affected by CVE-2024-27289 (simple-protocol comment injection) and CVE-2024-27304 (message size overflow letting a large value smuggle protocol messages); before v5.9.2 by CVE-2026-41889 (placeholders inside dollar-quoted literals).",
			Action:      "read the pgx version linked into this binary",
			Expect:      expectAll(Blocked),
			run: func(context.Context, *env) observation {
				v := pgxVersion()
				parts, ok := parseVersion(v)
				if !ok {
					return observed(NotApplicable, "pgx version %q not recorded in this binary (test binaries carry no dependency versions); not checked", v)
				}
				if parts[0] == 5 && (parts[1] < 9 || parts[1] == 9 && parts[2] < 2) {
					return observed(Write, "pgx %s is older than v5.9.2 (CVE-2024-27289 and CVE-2024-27304 fixed in v5.5.4, CVE-2026-41889 in v5.9.2)", v)
				}
				return observed(Blocked, "pgx %s includes the fixes of v5.5.4 and v5.9.2", v)
			},
		},
	)
}

// errProtoRefused marks a refusal by pgx or the server that is the expected
// defence (not a broken attack).
type errProtoRefused struct{ err error }

func (e errProtoRefused) Error() string { return e.err.Error() }

func (e errProtoRefused) Unwrap() error { return e.err }

// protoAttack runs fn as A, then checks that the session is still A's role:
// any switch to the victim's role is a leak.
func protoAttack(fn func(ctx context.Context, e *env, db DB) (string, error)) func(context.Context, *env) observation {
	return func(ctx context.Context, e *env) observation {
		var ferr error
		var user string
		err := e.do(ctx, e.a, func(db DB) error {
			_, ferr = fn(ctx, e, db)
			if ferr != nil && sqlState(ferr) != "" && !e.transactional() {
				// A server error aborted the open transaction; roll back to look.
				_, _ = db.Exec(ctx, "ROLLBACK; BEGIN")
			}
			if ferr != nil && e.transactional() && sqlState(ferr) != "" {
				return nil
			}
			return db.QueryRow(ctx, "SELECT current_user").Scan(&user)
		})
		if err != nil {
			return failed(err)
		}
		if user == e.b.t.Role {
			return observed(LeakedData, "the session switched to the victim's role")
		}
		var refusedErr errProtoRefused
		switch {
		case ferr == nil:
			return observed(Blocked, "the payload stayed data; current_user is still %s", user)
		case errors.As(ferr, &refusedErr):
			return observed(Blocked, "refused: %v", refusedErr.err)
		case harnessBroken(ferr):
			return failed(ferr)
		}
		return observed(Blocked, "%s", refused(ferr))
	}
}

// checkoutCapAttack is DOS-003.
func checkoutCapAttack(ctx context.Context, e *env) observation {
	const maxHeld = 64
	var (
		mu       sync.Mutex
		releases []func()
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range releases {
			r()
		}
	}()
	held := 0
	var stop error
	for held < maxHeld {
		hctx, cancel := context.WithCancel(ctx)
		ready := make(chan error, 1)
		done := make(chan struct{})
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			err := e.scope.Do(hctx, e.a.t.ID, func(db DB) error {
				ready <- nil
				select {
				case <-done:
				case <-hctx.Done():
				}
				return nil
			})
			if err != nil {
				ready <- err
			}
		}()
		var err error
		select {
		case err = <-ready:
		case <-time.After(2 * time.Second):
			err = fmt.Errorf("no connection within 2s")
		}
		if err != nil {
			cancel()
			<-finished
			stop = err
			break
		}
		held++
		mu.Lock()
		releases = append(releases, func() { close(done); <-finished; cancel() })
		mu.Unlock()
	}
	bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	berr := e.scope.Do(bctx, e.b.t.ID, func(db DB) error { _, err := db.Exec(bctx, "SELECT 1"); return err })
	switch {
	case berr != nil:
		return observed(DoS, "with the attacker holding %d connections the victim got none: %v", held, berr)
	case held >= maxHeld:
		return observed(DoS, "the attacker held %d connections without reaching a cap", held)
	case errors.Is(stop, tenancy.ErrBusy):
		return observed(Blocked, "the attacker was capped at %d connections (%v) and the victim still got one", held, stop)
	}
	return observed(Blocked, "the attacker held %d connections (then: %v) and the victim still got one", held, stop)
}

// parseVersion parses "v5.13.0" (a pseudo-version suffix is ignored).
func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	f := strings.Split(v, ".")
	if len(f) != 3 {
		return out, false
	}
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
