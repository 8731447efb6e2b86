package tenancy

import (
	"fmt"
	"time"
)

// Status is where a tenant is in its lifecycle.
type Status string

// The lifecycle of a tenant. Only StatusActive tenants are routable.
const (
	// StatusProvisioning is held only inside the transaction that creates the
	// tenant; a committed tenant is never seen in it unless creation was
	// interrupted in a way PostgreSQL could not roll back.
	StatusProvisioning Status = "provisioning"
	// StatusActive tenants are routable.
	StatusActive Status = "active"
	// StatusSuspended tenants keep their data but cannot be routed to: the
	// gateway has lost membership in their runtime role.
	StatusSuspended Status = "suspended"
	// StatusArchived tenants are kept read-never: like suspended, but meant to
	// last (a churned customer whose data must be retained).
	StatusArchived Status = "archived"
	// StatusDeleted tenants are soft-deleted: unroutable, data kept until
	// Tenant.RetainUntil, then purged.
	StatusDeleted Status = "deleted"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusProvisioning, StatusActive, StatusSuspended, StatusArchived, StatusDeleted:
		return true
	}
	return false
}

// Limits are per-tenant settings the router enforces itself, because PostgreSQL
// ignores ALTER ROLE ... SET and CONNECTION LIMIT once a session switches role
// with SET ROLE. Zero values mean "use the router's default".
type Limits struct {
	// MaxConns caps the tenant's concurrent checkouts.
	MaxConns int `json:"max_conns,omitempty"`
	// StatementTimeout is applied to every connection handed to the tenant.
	StatementTimeout time.Duration `json:"statement_timeout,omitempty"`
}

// Validate reports out-of-range limits.
func (l Limits) Validate() error {
	if l.MaxConns < 0 {
		return fmt.Errorf("tenancy: Limits.MaxConns is %d, must be >= 0", l.MaxConns)
	}
	if l.StatementTimeout < 0 {
		return fmt.Errorf("tenancy: Limits.StatementTimeout is %s, must be >= 0", l.StatementTimeout)
	}
	if l.StatementTimeout%time.Millisecond != 0 {
		return fmt.Errorf("tenancy: Limits.StatementTimeout is %s, must be whole milliseconds", l.StatementTimeout)
	}
	return nil
}

// Tenant is a tenant's catalog record.
type Tenant struct {
	ID     ID     `json:"id"`
	Key    Key    `json:"key"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Schema and Role are the tenant's schema and runtime role, as recorded in
	// the catalog at provisioning.
	Schema string `json:"schema"`
	Role   string `json:"role"`
	// Cluster names the PostgreSQL cluster holding the tenant ("default" for a
	// single-cluster deployment).
	Cluster string `json:"cluster"`
	Limits  Limits `json:"limits"`
	// SchemaVersion is the latest tenant migration applied.
	SchemaVersion int64     `json:"schema_version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// DeletedAt and RetainUntil are set while the tenant is soft-deleted.
	DeletedAt   *time.Time `json:"deleted_at,omitempty"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
}

// Routable returns nil when t may be handed connections, or a *StatusError
// saying why not.
func (t *Tenant) Routable() error {
	if t.Status == StatusActive {
		return nil
	}
	return &StatusError{ID: t.ID, Status: t.Status}
}
