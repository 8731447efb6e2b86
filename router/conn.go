package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// resetSQL removes everything a session can carry from one tenant to the next:
// open cursors, LISTEN registrations, session advisory locks, temporary tables
// and sequences state, server-side prepared statements, any SET SESSION
// AUTHORIZATION / SET ROLE, and every other setting (RESET ALL covers custom
// GUCs such as app.current_user). DISCARD ALL would do the same but cannot run
// in a multi-statement string, which would cost a round trip of its own.
const resetSQL = "CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; DEALLOCATE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL"

// lightResetSimpleSQL is the light reset (fastpath.go) as one simple-protocol
// string, for sessions that only ran trusted DB statements.
const lightResetSimpleSQL = "RESET ALL; RESET ROLE; SELECT pg_advisory_unlock_all()"

// Conn is a pooled connection scoped to one tenant: unqualified names resolve
// to the tenant's schema and only the tenant's privileges apply. It satisfies
// the DBTX interface sqlc generates, so generated queries run on it unchanged.
// Release it when done; a Conn is not safe for concurrent use.
type Conn struct {
	r        *Router
	pc       *pgxpool.Conn
	tenant   *tenancy.Tenant
	st       *connState
	slot     func()
	start    time.Time
	poisoned bool
	viaAff   bool // taken through r.aff, so returned through it
	once     sync.Once
}

// Acquire returns a connection scoped to tenant id (SessionRole mode). It fails
// closed: an invalid ID, an unknown, suspended, archived or deleted tenant, a
// tenant at its connection limit, or any trouble switching the connection
// returns a typed error (see tenancy) and no connection.
func (r *Router) Acquire(ctx context.Context, id tenancy.ID) (*Conn, error) {
	if r.cfg.Mode == TenantLogin {
		return r.acquireLogin(ctx, id) // tenantlogin.go
	}
	if r.cfg.Mode != SessionRole {
		return nil, ErrWrongMode
	}
	if err := r.checkPooler(ctx); err != nil {
		return nil, err // pooler.go: refuses transaction-mode poolers
	}
	start := time.Now()
	c, err := r.checkout(ctx, id)
	switched := false
	if err == nil {
		c.start = start
		switched, err = c.switchSession(ctx)
		c.st.clean = false // the caller may run anything on it
		if err != nil {
			c.poisoned = true
			c.Release()
			err = r.switchFailed(ctx, id, err)
			c = nil
		}
	}
	if r.cfg.Tracer != nil {
		r.cfg.Tracer.TraceAcquire(ctx, AcquireData{Tenant: id, Wait: time.Since(start), Switched: switched, Err: err})
	}
	return c, err
}

// AcquireFromContext is Acquire for the tenant carried by ctx
// (tenancy.WithTenant), or tenancy.ErrNoTenant.
func (r *Router) AcquireFromContext(ctx context.Context) (*Conn, error) {
	id, err := tenancy.MustFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return r.Acquire(ctx, id)
}

// switchSession points the session at c.tenant unless it already serves it,
// resetting the previous tenant's state when the tenant changes. Reset, switch
// and verification travel in one round trip.
func (c *Conn) switchSession(ctx context.Context) (bool, error) {
	t, st := c.tenant, c.st
	if st.key == t.Key && !st.dirty && st.version.Equal(t.UpdatedAt) {
		return false, nil
	}
	conn := c.pc.Conn()
	reset := st.dirty || (st.key != "" && st.key != t.Key)
	st.key, st.tenant = "", "" // unknown until verified
	var b strings.Builder
	if reset && st.clean && !st.dirty {
		// Only DB statements with trusted tags ran: the light reset is
		// enough, and keeps DB's statement cache (fastpath.go).
		b.WriteString(lightResetSimpleSQL)
		b.WriteString("; ")
	} else if reset {
		if st.stmts != nil {
			st.stmts.clear() // resetSQL runs DEALLOCATE ALL
		}
		b.WriteString(resetSQL)
		b.WriteString("; ")
	}
	fmt.Fprintf(&b, "SET ROLE %s; SET search_path = %s, pg_temp; SET statement_timeout = %d; SELECT current_user, session_user",
		quote(t.Role), quote(t.Schema), c.r.timeoutFor(t).Milliseconds())
	results, err := conn.PgConn().Exec(ctx, b.String()).ReadAll()
	if err != nil {
		return false, err
	}
	last := results[len(results)-1]
	if len(last.Rows) != 1 || len(last.Rows[0]) != 2 {
		return false, fmt.Errorf("verifying the switch: unexpected result shape")
	}
	if cu, su := string(last.Rows[0][0]), string(last.Rows[0][1]); cu != t.Role || su != st.gateway {
		return false, fmt.Errorf("verifying the switch: current_user %q session_user %q, want %q and %q", cu, su, t.Role, st.gateway)
	}
	st.key, st.version, st.tenant, st.dirty = t.Key, t.UpdatedAt, t.ID, false
	return true, nil
}

// Tenant returns the tenant this connection serves.
func (c *Conn) Tenant() *tenancy.Tenant { return c.tenant }

// Conn returns the underlying *pgx.Conn, already scoped to the tenant. It
// stays valid until Release.
func (c *Conn) Conn() *pgx.Conn { return c.pc.Conn() }

// Exec runs sql on the tenant's connection.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.pc.Exec(ctx, sql, args...)
}

// Query runs sql on the tenant's connection.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.pc.Query(ctx, sql, args...)
}

// QueryRow runs sql on the tenant's connection.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.pc.QueryRow(ctx, sql, args...)
}

// SendBatch sends b on the tenant's connection.
func (c *Conn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return c.pc.SendBatch(ctx, b)
}

// CopyFrom copies rows into a table of the tenant's schema.
func (c *Conn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return c.pc.CopyFrom(ctx, table, columns, src)
}

// Begin starts a transaction on the tenant's connection.
func (c *Conn) Begin(ctx context.Context) (pgx.Tx, error) { return c.pc.Begin(ctx) }

// BeginTx starts a transaction with options on the tenant's connection.
func (c *Conn) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return c.pc.BeginTx(ctx, opts)
}

// Release returns the connection to the pool. A connection that is broken,
// busy or not idle (a transaction left open or failed) is closed instead, so
// no state reaches the next checkout. Release is idempotent.
func (c *Conn) Release() {
	c.once.Do(func() {
		conn := c.pc.Conn()
		pg := conn.PgConn()
		destroy := c.poisoned || conn.IsClosed() || pg.IsBusy() || pg.TxStatus() != 'I'
		tenant := c.tenant.ID
		if destroy {
			if c.viaAff {
				c.r.aff.destroyed()
			}
			c.r.forget(conn)
			raw := c.pc.Hijack()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = raw.Close(ctx)
			}()
		} else if c.viaAff {
			key := c.st.key
			if c.st.dirty {
				key = ""
			}
			c.r.aff.release(c.pc, key)
		} else {
			c.pc.Release()
		}
		c.slot()
		if c.r.relTracer != nil {
			c.r.relTracer.TraceRelease(ReleaseData{Tenant: tenant, Held: time.Since(c.start), Destroyed: destroy})
		}
	})
}

func quote(s string) string { return pgx.Identifier{s}.Sanitize() }
