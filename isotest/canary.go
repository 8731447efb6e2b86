package isotest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Names of the objects the harness plants in each tenant's schema. They are
// created as the tenant owner role, so the tenant's runtime role gets DML on
// them through the default privileges, as on any table of the tenant.
const (
	canaryTable = "bh_isotest_canary"
	canarySeq   = "bh_isotest_seq"
	// canaryRows is how many rows each canary table gets; the statistics
	// side channel looks for this count.
	canaryRows = 37
)

// party is one of the two tenants: A attacks, B is the victim. Every string
// canary is unique to the run and to the party.
type party struct {
	name      string // "A" or "B"
	t         *tenancy.Tenant
	throwaway bool

	row     string // a row of the canary table
	def     string // the default of its secret column
	comment string // COMMENT ON TABLE
	lo      string // a large object's content
	notify  string // a notification payload
	guc     string // a custom setting's value
	prep    string // a prepared statement's result
	temp    string // a temporary table's row
	query   string // a literal in a query the victim runs
	seq     int64  // the sequence's value
	lockKey int64  // an advisory lock key
	loOID   uint32 // the large object, 0 when the tenant may not create one
}

func newParty(name string) *party {
	c := func(what string) string { return "cnry_" + strings.ToLower(name) + "_" + what + "_" + randomLower(16) }
	return &party{
		name: name, row: c("row"), def: c("default"), comment: c("comment"), lo: c("lo"),
		notify: c("notify"), guc: c("guc"), prep: c("prep"), temp: c("temp"), query: c("query"),
		seq: 1_000_000_000_000 + randInt63()%8_000_000_000_000, lockKey: 0x7b000000_00000000 | randInt63()%(1<<40),
	}
}

// data returns the canaries that are the tenant's data: seeing one is a data
// leak.
func (p *party) data() []string {
	return []string{p.row, p.lo, p.notify, p.guc, p.prep, p.temp, p.query, strconv.FormatInt(p.seq, 10)}
}

// meta returns the canaries that live in the catalog (defaults, comments):
// seeing one is a metadata leak.
func (p *party) meta() []string { return []string{p.def, p.comment} }

// table is the party's canary table, schema-qualified and quoted.
func (p *party) table() string { return pgx.Identifier{p.t.Schema, canaryTable}.Sanitize() }

// sequence is the party's canary sequence, schema-qualified and quoted.
func (p *party) sequence() string { return pgx.Identifier{p.t.Schema, canarySeq}.Sanitize() }

func (p *party) role() string { return pgx.Identifier{p.t.Role}.Sanitize() }

func (p *party) schema() string { return pgx.Identifier{p.t.Schema}.Sanitize() }

// env is what every attack gets: the scope, the two parties and the admin
// pool.
type env struct {
	scope Scope
	mode  string
	prov  *provision.Provisioner
	admin *pgxpool.Pool
	owner string
	a, b  *party

	cleanups []func(context.Context) error
}

func (e *env) transactional() bool { return e.mode == ModeTxLocal }

// onCleanup registers fn to run, last registered first, when the run ends.
func (e *env) onCleanup(fn func(context.Context) error) { e.cleanups = append(e.cleanups, fn) }

// cleanup runs the registered cleanups with a context that survives ctx's
// cancellation, so an interrupted run still removes what it created.
func (e *env) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var errs []error
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		if err := e.cleanups[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	e.cleanups = nil
	return errors.Join(errs...)
}

// errDiscard makes a transactional unit of work roll back.
var errDiscard = errors.New("isotest: discard the unit of work")

// do runs fn as p and leaves nothing behind: a transactional unit of work is
// rolled back; a session runs fn inside a transaction it rolls back. That
// keeps what an attack wrote or did to its session (SET ROLE, SET, set_config
// are all transactional) out of the database and out of the next attack. If
// the rollback fails, the connection is left inside a transaction, which
// makes the router (or pgxpool) close it instead of reusing it.
func (e *env) do(ctx context.Context, p *party, fn func(DB) error) error {
	err := e.scope.Do(ctx, p.t.ID, func(db DB) error {
		if !e.transactional() {
			if _, err := db.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			ferr := fn(db)
			_, _ = db.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			return ferr
		}
		if err := fn(db); err != nil {
			return err
		}
		return errDiscard
	})
	if errors.Is(err, errDiscard) {
		return nil
	}
	return err
}

// keep runs fn as p and keeps its effects: a transactional unit of work
// commits, a session goes back to the pool as fn left it.
func (e *env) keep(ctx context.Context, p *party, fn func(DB) error) error {
	return e.scope.Do(ctx, p.t.ID, fn)
}

// queryAll runs sql and returns every value of every row, separated by
// spaces.
func queryAll(ctx context.Context, db DB, sql string, args ...any) (string, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "", err
		}
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				b.Write(x)
			default:
				fmt.Fprint(&b, x)
			}
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}

// runAs runs stmts in order in one unit of work of p (discarded afterwards)
// and returns the output of the last one. It stops at the first error.
func (e *env) runAs(ctx context.Context, p *party, stmts ...string) (out string, err error) {
	err = e.do(ctx, p, func(db DB) error {
		for _, s := range stmts {
			if out, err = queryAll(ctx, db, s); err != nil {
				return fmt.Errorf("%s: %w", abbrev(s), err)
			}
		}
		return nil
	})
	return out, err
}

// pid returns the backend PID of db.
func pid(db DB) uint32 { return db.Conn().PgConn().PID() }

// sawAny returns the first of canaries contained in out.
func sawAny(out string, canaries []string) (string, bool) {
	for _, c := range canaries {
		if c != "" && strings.Contains(out, c) {
			return c, true
		}
	}
	return "", false
}

// refused describes an error for the evidence: SQLSTATE and message for
// database errors.
func refused(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Sprintf("refused: SQLSTATE %s: %s", pgErr.Code, pgErr.Message)
	}
	return "refused: " + err.Error()
}

// sqlState returns the SQLSTATE of err, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// harnessBroken reports errors that mean the attack's SQL is wrong rather
// than refused (a syntax error in the catalogue must not read as "blocked").
func harnessBroken(err error) bool {
	switch sqlState(err) {
	case "42601", "42P02", "42883": // syntax_error, undefined_parameter, undefined_function
		return true
	}
	return false
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

func randInt63() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

// literal quotes s as an SQL string literal. The harness only splices
// canaries it generated itself ([a-z0-9_]); the check keeps it that way.
func literal(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			panic("isotest: literal: unexpected byte in " + strconv.Quote(s))
		}
	}
	return "'" + s + "'"
}

// setup provisions (or looks up) the two tenants and plants the canaries.
// Whatever it creates is registered with e.onCleanup before it is created.
func (e *env) setup(ctx context.Context, t *Target) error {
	e.a, e.b = newParty("A"), newParty("B")
	for _, p := range []*party{e.a, e.b} {
		id := t.Attacker
		if p == e.b {
			id = t.Victim
		}
		if id == "" {
			p.throwaway = true
			// With gateway shards, a throwaway victim is put on the
			// attacker's shard, the worst case: the two then share shard
			// logins and backends, as the session-state attacks need. A
			// tenant's shard follows from its random key, so tenants are
			// created until one lands there.
			shards := e.prov.Config().GatewayShards
			for attempt := 0; ; attempt++ {
				id = tenancy.ID("isotest-" + strings.ToLower(p.name) + "-" + randomLower(10))
				e.onCleanup(func(ctx context.Context) error { return removeTenant(ctx, e.prov, id) })
				tn, err := e.prov.Create(ctx, id, nil)
				if err != nil {
					return fmt.Errorf("isotest: provisioning throwaway tenant %s %q: %w", p.name, id, err)
				}
				p.t = tn
				if p != e.b || shards < 2 || tenancy.ShardOf(tn.Key, shards) == tenancy.ShardOf(e.a.t.Key, shards) || attempt >= 10*shards {
					break
				}
				if err := removeTenant(ctx, e.prov, id); err != nil {
					return err
				}
			}
		} else {
			tn, err := e.prov.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("isotest: looking up tenant %s %q: %w", p.name, id, err)
			}
			p.t = tn
		}
		if err := e.plantObjects(ctx, p); err != nil {
			return err
		}
	}
	if e.a.t.Key == e.b.t.Key {
		return fmt.Errorf("isotest: the attacker and the victim are the same tenant %q", e.a.t.ID)
	}
	// Large objects live outside schemas; the victim creates one if it may.
	for _, p := range []*party{e.a, e.b} {
		err := e.keep(ctx, p, func(db DB) error {
			return db.QueryRow(ctx, "SELECT lo_from_bytea(0, convert_to($1, 'UTF8'))", p.lo).Scan(&p.loOID)
		})
		if err == nil && p.loOID != 0 {
			p := p
			e.onCleanup(func(ctx context.Context) error {
				return e.keep(ctx, p, func(db DB) error {
					_, err := db.Exec(ctx, "SELECT lo_unlink($1)", p.loOID)
					return err
				})
			})
		}
	}
	// Sanity: the attacker sees its own canary through the scope, so a
	// "blocked" below means the database refused, not that the scope is broken.
	out, err := e.runAs(ctx, e.a, "SELECT secret FROM "+pgx.Identifier{canaryTable}.Sanitize())
	if err != nil {
		return fmt.Errorf("isotest: the attacker cannot read its own canary table through the scope (does the scope route to the tenant's schema?): %w", err)
	}
	if !strings.Contains(out, e.a.row) {
		return fmt.Errorf("isotest: the attacker's scope does not show the attacker's canary row")
	}
	return nil
}

// plantObjects creates the canary table and sequence in p's schema as the
// tenant owner role, with canaries in a row, a column default, a comment and
// the sequence's value, and analyzes the table so its statistics exist.
func (e *env) plantObjects(ctx context.Context, p *party) error {
	if !p.throwaway {
		e.onCleanup(func(ctx context.Context) error {
			_, err := e.admin.Exec(ctx, "BEGIN; SET LOCAL ROLE "+pgx.Identifier{e.owner}.Sanitize()+
				"; DROP TABLE IF EXISTS "+p.table()+"; DROP SEQUENCE IF EXISTS "+p.sequence()+"; COMMIT")
			return err
		})
	}
	stmts := strings.Join([]string{
		"BEGIN",
		"SET LOCAL ROLE " + pgx.Identifier{e.owner}.Sanitize(),
		"CREATE TABLE " + p.table() + " (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, secret text NOT NULL DEFAULT " + literal(p.def) + ")",
		"COMMENT ON TABLE " + p.table() + " IS " + literal(p.comment),
		"CREATE SEQUENCE " + p.sequence(),
		"SELECT setval(" + quoteLit(p.sequence()) + ", " + strconv.FormatInt(p.seq, 10) + ")",
		"INSERT INTO " + p.table() + " (secret) SELECT " + literal(p.row) + " FROM generate_series(1, " + strconv.Itoa(canaryRows) + ")",
		"ANALYZE " + p.table(),
		"COMMIT",
	}, "; ")
	if _, err := e.admin.Exec(ctx, stmts); err != nil {
		return fmt.Errorf("isotest: planting canary objects in the schema of tenant %s %q: %w", p.name, p.t.ID, err)
	}
	return nil
}

// removeTenant deletes (if needed) and purges tenant id; a tenant that no
// longer exists is not an error.
func removeTenant(ctx context.Context, p *provision.Provisioner, id tenancy.ID) error {
	t, err := p.Get(ctx, id)
	if errors.Is(err, tenancy.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("isotest: removing tenant %q: %w", id, err)
	}
	if t.Status != tenancy.StatusDeleted {
		if _, err := p.Delete(ctx, id, nil); err != nil {
			return fmt.Errorf("isotest: deleting tenant %q: %w", id, err)
		}
	}
	if _, err := p.Purge(ctx, id); err != nil {
		return fmt.Errorf("isotest: purging tenant %q: %w", id, err)
	}
	return nil
}
