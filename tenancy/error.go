package tenancy

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Match them with errors.Is; the typed errors below carry the
// details and match these through their Is methods.
var (
	// ErrInvalidID: a tenant ID failed validation (see ID.Validate).
	ErrInvalidID = errors.New("invalid tenant id")
	// ErrNoTenant: an operation needed a tenant and the context carried none.
	ErrNoTenant = errors.New("no tenant in context")
	// ErrNotFound: no tenant has this ID.
	ErrNotFound = errors.New("tenant not found")
	// ErrExists: creating a tenant whose ID is taken.
	ErrExists = errors.New("tenant already exists")
	// ErrNotActive: the tenant exists but is not active (any of the statuses below).
	ErrNotActive = errors.New("tenant not active")
	// ErrSuspended: the tenant is suspended.
	ErrSuspended = errors.New("tenant suspended")
	// ErrArchived: the tenant is archived.
	ErrArchived = errors.New("tenant archived")
	// ErrDeleted: the tenant is soft-deleted.
	ErrDeleted = errors.New("tenant deleted")
	// ErrBusy: the tenant is at its concurrent-checkout limit and the wait for a
	// slot ran out.
	ErrBusy = errors.New("tenant at connection limit")
	// ErrRetentionExpired: restoring a deleted tenant after its retention deadline.
	ErrRetentionExpired = errors.New("tenant retention expired")
	// ErrInvalidTransition: a lifecycle operation that does not apply to the
	// tenant's current status (e.g. restoring an active tenant).
	ErrInvalidTransition = errors.New("invalid tenant status transition")
	// ErrConnLost: the connection to PostgreSQL broke while serving a tenant.
	// The work may be retried on a new connection.
	ErrConnLost = errors.New("connection lost")
)

// InvalidIDError says why a tenant ID was rejected. It matches ErrInvalidID.
type InvalidIDError struct {
	ID     string
	Reason string
}

func (e *InvalidIDError) Error() string {
	id := e.ID
	if len(id) > 80 {
		id = id[:80] + "..."
	}
	return fmt.Sprintf("invalid tenant id %q: %s", id, e.Reason)
}

// Is reports whether target is ErrInvalidID.
func (e *InvalidIDError) Is(target error) bool { return target == ErrInvalidID }

// NotFoundError names the tenant that was not found. It matches ErrNotFound.
type NotFoundError struct{ ID ID }

func (e *NotFoundError) Error() string { return fmt.Sprintf("tenant %q not found", string(e.ID)) }

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ExistsError names the tenant that already exists. It matches ErrExists.
type ExistsError struct{ ID ID }

func (e *ExistsError) Error() string { return fmt.Sprintf("tenant %q already exists", string(e.ID)) }

// Is reports whether target is ErrExists.
func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// StatusError says a tenant cannot be used in its current status. It matches
// ErrNotActive and the sentinel of its status (ErrSuspended, ErrArchived,
// ErrDeleted).
type StatusError struct {
	ID     ID
	Status Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("tenant %q is %s", string(e.ID), e.Status)
}

// Is reports whether target is ErrNotActive or the sentinel for e.Status.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotActive:
		return e.Status != StatusActive
	case ErrSuspended:
		return e.Status == StatusSuspended
	case ErrArchived:
		return e.Status == StatusArchived
	case ErrDeleted:
		return e.Status == StatusDeleted
	}
	return false
}

// TransitionError says a lifecycle operation does not apply to a tenant in its
// current status. It matches ErrInvalidTransition.
type TransitionError struct {
	ID     ID
	Status Status
	Op     string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s tenant %q: it is %s", e.Op, string(e.ID), e.Status)
}

// Is reports whether target is ErrInvalidTransition.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// BusyError says a tenant hit its concurrent-checkout limit. It matches ErrBusy.
type BusyError struct {
	ID    ID
	Limit int
	// Waited is how long the caller waited for a slot.
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("tenant %q has all %d connections in use (waited %s)", string(e.ID), e.Limit, e.Waited.Round(time.Millisecond))
}

// Is reports whether target is ErrBusy.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }
