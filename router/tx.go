package router

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Tx is a transaction scoped to one tenant. Commit or Rollback ends it and
// returns its connection to the pool.
type Tx struct {
	pgx.Tx
	c *Conn
}

// Tenant returns the tenant this transaction serves.
func (t *Tx) Tenant() *tenancy.Tenant { return t.c.tenant }

// Commit commits the transaction and releases its connection.
func (t *Tx) Commit(ctx context.Context) error {
	defer t.c.Release()
	return t.Tx.Commit(ctx)
}

// Rollback rolls the transaction back and releases its connection. It is safe
// to defer after Commit.
func (t *Tx) Rollback(ctx context.Context) error {
	defer t.c.Release()
	return t.Tx.Rollback(ctx)
}

// Begin starts a transaction scoped to tenant id, in either mode.
func (r *Router) Begin(ctx context.Context, id tenancy.ID) (*Tx, error) {
	return r.BeginTx(ctx, id, pgx.TxOptions{})
}

// BeginTx is Begin with transaction options. In TxLocal mode the BEGIN, the
// SET LOCAL of role, search_path and statement_timeout, and (when the
// connection last served another tenant) the session reset travel in one
// round trip. opts.BeginQuery must be empty.
func (r *Router) BeginTx(ctx context.Context, id tenancy.ID, opts pgx.TxOptions) (*Tx, error) {
	if opts.BeginQuery != "" {
		return nil, fmt.Errorf("router: BeginTx: TxOptions.BeginQuery is reserved for the router")
	}
	if r.cfg.Mode == TenantLogin {
		return r.beginLogin(ctx, id, opts) // tenantlogin.go
	}
	if r.cfg.Mode == SessionRole {
		c, err := r.Acquire(ctx, id)
		if err != nil {
			return nil, err
		}
		tx, err := c.BeginTx(ctx, opts)
		if err != nil {
			c.Release()
			return nil, fmt.Errorf("router: beginning a transaction for tenant %q: %w", id, connLost(err))
		}
		return &Tx{Tx: tx, c: c}, nil
	}

	start := time.Now()
	c, err := r.checkout(ctx, id)
	var tx pgx.Tx
	switched := false
	if err == nil {
		c.start = start
		switched = c.st.key != c.tenant.Key
		tx, err = c.beginLocal(ctx, opts)
		if err != nil {
			c.poisoned = true
			c.Release()
			err = r.switchFailed(ctx, id, err)
		}
	}
	if r.cfg.Tracer != nil {
		r.cfg.Tracer.TraceAcquire(ctx, AcquireData{Tenant: id, Wait: time.Since(start), Switched: switched, Err: err})
	}
	if err != nil {
		return nil, err
	}
	return &Tx{Tx: tx, c: c}, nil
}

func (c *Conn) beginLocal(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	t, st := c.tenant, c.st
	var b strings.Builder
	wasClean := st.clean
	st.clean = false // the caller may run anything in the transaction
	if !st.dirty && wasClean && st.key != "" && st.key != t.Key {
		// Only DB statements with trusted tags ran: the light reset is
		// enough, and keeps DB's statement cache (fastpath.go).
		b.WriteString(lightResetSimpleSQL)
		b.WriteString("; COMMIT; ")
	} else if st.dirty || (st.key != "" && st.key != t.Key) {
		if st.stmts != nil {
			st.stmts.clear() // resetSQL runs DEALLOCATE ALL
		}
		// The reset commits on its own before BEGIN, so a rollback of the
		// tenant's transaction cannot undo it.
		b.WriteString(resetSQL)
		b.WriteString("; COMMIT; ")
	}
	st.key, st.tenant = "", ""
	b.WriteString(beginSQL(opts))
	fmt.Fprintf(&b, "; SET LOCAL ROLE %s; SET LOCAL search_path = %s, pg_temp; SET LOCAL statement_timeout = %d",
		quote(t.Role), quote(t.Schema), c.r.timeoutFor(t).Milliseconds())
	opts.BeginQuery = b.String()
	tx, err := c.pc.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	st.key, st.version, st.tenant, st.dirty = t.Key, t.UpdatedAt, t.ID, false
	return tx, nil
}

func beginSQL(o pgx.TxOptions) string {
	var b strings.Builder
	b.WriteString("BEGIN")
	if o.IsoLevel != "" {
		b.WriteString(" ISOLATION LEVEL " + string(o.IsoLevel))
	}
	if o.AccessMode != "" {
		b.WriteString(" " + string(o.AccessMode))
	}
	if o.DeferrableMode != "" {
		b.WriteString(" " + string(o.DeferrableMode))
	}
	return b.String()
}

// InTx runs fn in a transaction scoped to tenant id and commits it, or rolls
// it back if fn returns an error or panics.
func (r *Router) InTx(ctx context.Context, id tenancy.ID, fn func(pgx.Tx) error) error {
	tx, err := r.Begin(ctx, id)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return connLost(err) // a broken connection matches tenancy.ErrConnLost
	}
	return connLost(tx.Commit(ctx))
}
