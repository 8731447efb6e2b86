package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// AuditEvent is one entry of the append-only audit log.
type AuditEvent struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Tenant tenancy.ID      `json:"tenant,omitempty"`
	Action string          `json:"action"`
	Target string          `json:"target,omitempty"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// AuditQuery filters ListAudit. Zero fields do not filter.
type AuditQuery struct {
	Tenant tenancy.ID
	Action string
	// BeforeID pages backwards: events with an ID below it.
	BeforeID int64
	// Limit is 1 to 1000. Default: 100.
	Limit int
}

// RecordAudit appends an application event (an HTTP mutation, a failed
// login) to the audit log. The actor comes from ctx (tenancy.WithActor).
func (p *Provisioner) RecordAudit(ctx context.Context, tenant tenancy.ID, action, target string, detail map[string]any) error {
	if action == "" {
		return fmt.Errorf("provision: RecordAudit: action is empty")
	}
	return p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		return audit(ctx, q, tenant, action, target, detail)
	})
}

// ListAudit returns audit events, newest first.
func (p *Provisioner) ListAudit(ctx context.Context, aq AuditQuery) ([]AuditEvent, error) {
	limit := aq.Limit
	if limit == 0 {
		limit = 100
	}
	if limit < 0 || limit > 1000 {
		return nil, fmt.Errorf("provision: AuditQuery.Limit is %d, must be 1 to 1000", limit)
	}
	params := dbsqlc.ListAuditParams{MaxRows: int32(limit)}
	if aq.Tenant != "" {
		s := string(aq.Tenant)
		params.TenantID = &s
	}
	if aq.Action != "" {
		params.Action = &aq.Action
	}
	if aq.BeforeID > 0 {
		params.BeforeID = &aq.BeforeID
	}
	var out []AuditEvent
	err := p.controlTx(ctx, func(_ pgx.Tx, q *dbsqlc.Queries) error {
		rows, err := q.ListAudit(ctx, params)
		for _, r := range rows {
			ev := AuditEvent{ID: r.ID, At: r.At.Time, Actor: r.Actor, Action: r.Action, Target: r.Target, Detail: r.Detail}
			if r.TenantID != nil {
				ev.Tenant = tenancy.ID(*r.TenantID)
			}
			out = append(out, ev)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provision: listing audit events: %w", err)
	}
	return out, nil
}
