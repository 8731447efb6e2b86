package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Provisioner manages tenants: the catalog, their roles and schemas, and their
// lifecycle. It runs on the admin (provisioning) pool, never on the request
// path. It is safe for concurrent use.
type Provisioner struct {
	pool       *pgxpool.Pool
	cfg        *Config
	migrations []*migrate.Migration

	// failAt, when set (tests only), is called at each step of Create; a
	// non-nil error aborts the step as a real failure would.
	failAt func(step string) error
}

// New returns a Provisioner over the admin pool. The pool's role needs
// CREATEROLE and CREATE on the database (see Init). New does no I/O beyond
// reading cfg.Migrations.
func New(admin *pgxpool.Pool, cfg *Config) (*Provisioner, error) {
	if admin == nil {
		return nil, errors.New("provision: New: admin pool is nil")
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	p := &Provisioner{pool: admin, cfg: c}
	if c.Migrations != nil {
		ms, err := migrate.Load(c.Migrations)
		if err != nil {
			return nil, fmt.Errorf("provision: loading tenant migrations: %w", err)
		}
		p.migrations = ms
	}
	return p, nil
}

// Config returns the configuration in effect, defaults applied.
func (p *Provisioner) Config() Config { return *p.cfg }

// Migrations returns the tenant migrations Create applies.
func (p *Provisioner) Migrations() []*migrate.Migration { return p.migrations }

// controlTx runs fn in a transaction whose search_path is the control schema.
// BEGIN and the SET LOCAL travel in one round trip.
func (p *Provisioner) controlTx(ctx context.Context, fn func(tx pgx.Tx, q *dbsqlc.Queries) error) error {
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + p.controlPath()})
	if err != nil {
		return fmt.Errorf("beginning control-plane transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(tx, dbsqlc.New(tx)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (p *Provisioner) controlPath() string {
	return "SET LOCAL search_path = " + pgx.Identifier{p.cfg.ControlSchema}.Sanitize() + ", pg_temp"
}

// tenantRecord converts a catalog row.
func tenantRecord(row dbsqlc.Tenant) (*tenancy.Tenant, error) {
	t := &tenancy.Tenant{
		ID:            tenancy.ID(row.ID),
		Key:           tenancy.Key(row.Key),
		Name:          row.Name,
		Status:        tenancy.Status(row.Status),
		Schema:        row.SchemaName,
		Role:          row.RoleName,
		Cluster:       row.Cluster,
		SchemaVersion: row.SchemaVersion,
		CreatedAt:     row.CreatedAt.Time,
		UpdatedAt:     row.UpdatedAt.Time,
	}
	if len(row.Limits) > 0 {
		if err := json.Unmarshal(row.Limits, &t.Limits); err != nil {
			return nil, fmt.Errorf("decoding limits of tenant %q: %w", row.ID, err)
		}
	}
	if row.DeletedAt.Valid {
		d := row.DeletedAt.Time
		t.DeletedAt = &d
	}
	if row.RetainUntil.Valid {
		r := row.RetainUntil.Time
		t.RetainUntil = &r
	}
	return t, nil
}

// interpretError maps driver errors met while working on tenant id to
// bulkhead's typed errors.
func interpretError(id tenancy.ID, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &tenancy.NotFoundError{ID: id}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation && pgErr.ConstraintName == "tenants_pkey" {
		return &tenancy.ExistsError{ID: id}
	}
	if pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return fmt.Errorf("%w: %w", tenancy.ErrConnLost, err)
	}
	return err
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// audit appends an event to the audit log inside tx.
func audit(ctx context.Context, q *dbsqlc.Queries, id tenancy.ID, action, target string, detail map[string]any) error {
	b := []byte("{}")
	if detail != nil {
		var err error
		if b, err = json.Marshal(detail); err != nil {
			return fmt.Errorf("encoding audit detail: %w", err)
		}
	}
	tid := string(id)
	var tenant *string
	if tid != "" {
		tenant = &tid
	}
	_, err := q.InsertAudit(ctx, dbsqlc.InsertAuditParams{
		Actor: tenancy.ActorFromContext(ctx), TenantID: tenant, Action: action, Target: target, Detail: b,
	})
	if err != nil {
		return fmt.Errorf("recording audit event %q: %w", action, err)
	}
	return nil
}
