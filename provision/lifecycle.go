package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Get returns tenant id's catalog record, or an error matching
// tenancy.ErrNotFound.
func (p *Provisioner) Get(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var out *tenancy.Tenant
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenant(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		out, err = tenantRecord(row)
		return err
	})
	return out, err
}

// Tenant is Get under the name the router's Catalog interface expects, so a
// Provisioner can serve as a router's catalog in tests and single-process
// deployments.
func (p *Provisioner) Tenant(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	return p.Get(ctx, id)
}

// ListOpts are options for List. A nil *ListOpts means all defaults.
type ListOpts struct {
	// Status keeps only tenants in this status. Default: all.
	Status tenancy.Status
	// After continues a listing after this ID (ListResult.Next of the previous
	// page). Default: from the start.
	After tenancy.ID
	// Limit is the page size, 1 to 1000. Default: 100.
	Limit int
}

// ListResult is one page of tenants, ordered by ID.
type ListResult struct {
	Tenants []*tenancy.Tenant
	// Next is the After of the next page, or "" when this page is the last.
	Next tenancy.ID
}

// List returns a page of tenants ordered by ID.
func (p *Provisioner) List(ctx context.Context, opts *ListOpts) (*ListResult, error) {
	if opts == nil {
		opts = &ListOpts{}
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0 || limit > 1000:
		return nil, fmt.Errorf("provision: ListOpts.Limit is %d, must be 1 to 1000", limit)
	}
	var status *string
	if opts.Status != "" {
		if !opts.Status.Valid() {
			return nil, fmt.Errorf("provision: ListOpts.Status %q is not a tenant status", opts.Status)
		}
		s := string(opts.Status)
		status = &s
	}
	res := &ListResult{}
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		rows, err := q.ListTenants(ctx, dbsqlc.ListTenantsParams{Status: status, After: string(opts.After), MaxRows: int32(limit + 1)})
		if err != nil {
			return err
		}
		for i, row := range rows {
			if i == limit {
				res.Next = res.Tenants[limit-1].ID
				break
			}
			t, err := tenantRecord(row)
			if err != nil {
				return err
			}
			res.Tenants = append(res.Tenants, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("provision: listing tenants: %w", err)
	}
	return res, nil
}

// Counts returns how many tenants are in each status.
func (p *Provisioner) Counts(ctx context.Context) (map[tenancy.Status]int64, error) {
	out := map[tenancy.Status]int64{}
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		rows, err := q.CountTenantsByStatus(ctx)
		for _, r := range rows {
			out[tenancy.Status(r.Status)] = r.N
		}
		return err
	})
	return out, err
}

// UpdateOpts changes a tenant's metadata. Nil fields are left as they are.
type UpdateOpts struct {
	Name     *string
	Limits   *tenancy.Limits
	Settings json.RawMessage
}

// Update changes a tenant's name, limits or settings. The router picks up new
// limits within its status cache TTL.
func (p *Provisioner) Update(ctx context.Context, id tenancy.ID, opts UpdateOpts) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			return nil, err
		}
	}
	if opts.Name != nil && len(*opts.Name) > 200 {
		return nil, fmt.Errorf("provision: UpdateOpts.Name is longer than 200 bytes")
	}
	if opts.Settings != nil && !json.Valid(opts.Settings) {
		return nil, fmt.Errorf("provision: UpdateOpts.Settings is not valid JSON")
	}
	var out *tenancy.Tenant
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenantForUpdate(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		params := dbsqlc.UpdateTenantMetaParams{ID: row.ID, Name: row.Name, Limits: row.Limits, Settings: row.Settings}
		if opts.Name != nil {
			params.Name = *opts.Name
		}
		if opts.Limits != nil {
			if params.Limits, err = json.Marshal(opts.Limits); err != nil {
				return err
			}
		}
		if opts.Settings != nil {
			params.Settings = opts.Settings
		}
		row, err = q.UpdateTenantMeta(ctx, params)
		if err != nil {
			return err
		}
		if err := audit(ctx, q, id, "tenant.update", row.SchemaName, nil); err != nil {
			return err
		}
		out, err = tenantRecord(row)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provision: updating tenant %q: %w", id, err)
	}
	return out, nil
}

// transition changes a tenant's status under a row lock: it checks that the
// current status is one of from, grants or revokes the gateway's membership in
// the runtime role so the database enforces the new status, and records an
// audit event.
func (p *Provisioner) transition(ctx context.Context, id tenancy.ID, op string, from []tenancy.Status, to tenancy.Status, retainUntil *time.Time) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	var out *tenancy.Tenant
	err := p.controlTx(ctx, func(tx pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenantForUpdate(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		cur := tenancy.Status(row.Status)
		ok := false
		for _, s := range from {
			ok = ok || s == cur
		}
		if !ok {
			return &tenancy.TransitionError{ID: id, Status: cur, Op: op}
		}
		if to == tenancy.StatusDeleted && retainUntil == nil {
			return fmt.Errorf("internal: delete without a retention deadline")
		}
		if op == "restore" && row.RetainUntil.Valid && time.Now().After(row.RetainUntil.Time) {
			return fmt.Errorf("%w: tenant %q could be restored until %s", tenancy.ErrRetentionExpired, id, row.RetainUntil.Time.Format(time.RFC3339))
		}
		gw := quote(p.gatewayFor(tenancy.Key(row.Key)))
		membership := "REVOKE " + quote(row.RoleName) + " FROM " + gw
		if to == tenancy.StatusActive && !p.cfg.NoGatewayMembership {
			membership = "GRANT " + quote(row.RoleName) + " TO " + gw
		}
		// On the tenant's cluster (cluster.go): another cluster commits first.
		if _, err := p.onCluster(ctx, tx, row.Cluster, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, membership); err != nil {
				return fmt.Errorf("%s: %w", membership, err)
			}
			if p.loginEnabled() {
				return p.setLoginTx(ctx, tx, tenancy.Key(row.Key), row.SchemaName, row.RoleName, to == tenancy.StatusActive)
			}
			return nil
		}); err != nil {
			return err
		}
		if to == tenancy.StatusDeleted {
			row, err = q.SetTenantDeleted(ctx, dbsqlc.SetTenantDeletedParams{ID: row.ID, RetainUntil: pgtype.Timestamptz{Time: *retainUntil, Valid: true}})
		} else {
			row, err = q.SetTenantStatus(ctx, dbsqlc.SetTenantStatusParams{ID: row.ID, Status: string(to)})
		}
		if err != nil {
			return err
		}
		detail := map[string]any{"from": cur, "to": to}
		if retainUntil != nil {
			detail["retain_until"] = retainUntil.UTC().Format(time.RFC3339)
		}
		if err := audit(ctx, q, id, "tenant."+op, row.SchemaName, detail); err != nil {
			return err
		}
		out, err = tenantRecord(row)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provision: %s tenant %q: %w", op, id, err)
	}
	return out, nil
}

// Suspend makes an active tenant unroutable while keeping its data. The
// gateway loses membership in the tenant's runtime role at once, so no new
// session can switch to it; routers stop handing out connections within their
// status cache TTL.
func (p *Provisioner) Suspend(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	return p.transition(ctx, id, "suspend", []tenancy.Status{tenancy.StatusActive}, tenancy.StatusSuspended, nil)
}

// Activate makes a suspended or archived tenant routable again.
func (p *Provisioner) Activate(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	return p.transition(ctx, id, "activate", []tenancy.Status{tenancy.StatusSuspended, tenancy.StatusArchived}, tenancy.StatusActive, nil)
}

// Archive makes an active or suspended tenant unroutable for the long term,
// keeping its data.
func (p *Provisioner) Archive(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	return p.transition(ctx, id, "archive", []tenancy.Status{tenancy.StatusActive, tenancy.StatusSuspended}, tenancy.StatusArchived, nil)
}

// DeleteOpts are options for Delete. A nil *DeleteOpts means all defaults.
type DeleteOpts struct {
	// Retention is how long the data is kept before it may be purged.
	// Default: Config.Retention (30 days).
	Retention time.Duration
}

// Delete soft-deletes a tenant: unroutable at once (as Suspend), data kept
// until the retention deadline, restorable until then with Restore.
func (p *Provisioner) Delete(ctx context.Context, id tenancy.ID, opts *DeleteOpts) (*tenancy.Tenant, error) {
	retention := p.cfg.Retention
	if opts != nil && opts.Retention != 0 {
		retention = opts.Retention
	}
	if retention < 0 {
		return nil, fmt.Errorf("provision: DeleteOpts.Retention is negative")
	}
	until := time.Now().Add(retention)
	return p.transition(ctx, id, "delete", []tenancy.Status{tenancy.StatusActive, tenancy.StatusSuspended, tenancy.StatusArchived}, tenancy.StatusDeleted, &until)
}

// Restore brings a soft-deleted tenant back, with its data, if its retention
// deadline has not passed (else an error matching tenancy.ErrRetentionExpired).
func (p *Provisioner) Restore(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	return p.transition(ctx, id, "restore", []tenancy.Status{tenancy.StatusDeleted}, tenancy.StatusActive, nil)
}
