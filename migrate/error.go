package migrate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// ErrChecksum matches a *ChecksumError.
var ErrChecksum = errors.New("applied migration changed")

// MigrationError is a migration that failed to apply to a schema. Unwrap gives
// the driver error; SQLState the PostgreSQL error code when there is one.
type MigrationError struct {
	Schema  string
	Version int64
	Name    string
	// Direction is Up (the zero value also means up) or Down.
	Direction Direction
	Err       error
}

func (e *MigrationError) Error() string {
	switch {
	case e.Version == 0:
		return fmt.Sprintf("migrating schema %q: %v", e.Schema, e.Err)
	case e.Direction == Down:
		return fmt.Sprintf("reverting migration %04d_%s in schema %q: %v", e.Version, e.Name, e.Schema, e.Err)
	}
	return fmt.Sprintf("applying migration %04d_%s to schema %q: %v", e.Version, e.Name, e.Schema, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// SQLState returns the PostgreSQL SQLSTATE of the failure, or "".
func (e *MigrationError) SQLState() string {
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// ChecksumError says an applied migration's file no longer matches what was
// applied. The migration is not re-run; fix the file or write a new migration.
type ChecksumError struct {
	Schema          string
	Version         int64
	Name            string
	Applied, OnDisk string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("migration %04d_%s applied to schema %q has changed since (checksum %.12s applied, %.12s now); write a new migration instead of editing an applied one",
		e.Version, e.Name, e.Schema, e.Applied, e.OnDisk)
}

// Is reports whether target is ErrChecksum.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// Sentinels a run stops with (RunResult.Stopped, and matched through a
// *PartialError with errors.Is).
var (
	// ErrCanaryFailed: a canary tenant failed, so the run did not start the
	// others.
	ErrCanaryFailed = errors.New("a canary tenant failed; the remaining tenants were not started")
	// ErrBudgetExhausted: as many tenants failed as RunOpts.ErrorBudget
	// allows, so the run started no more.
	ErrBudgetExhausted = errors.New("error budget exhausted; the remaining tenants were not started")
	// ErrUnknownCluster: a tenant's catalog row names a cluster the Migrator
	// has no admin pool for (see *UnknownClusterError).
	ErrUnknownCluster = errors.New("the tenant's cluster is not configured")
	// ErrRunNotFound: no run in the ledger has the id given.
	ErrRunNotFound = errors.New("migration run not found")
)

// PartialError is returned by Up and Down when some tenants failed or were not
// reached. It carries the whole RunResult; Succeeded and Failed list the
// tenants by outcome. errors.Is and errors.As see through it to every
// tenant's error and to Stopped, so errors.Is(err, ErrChecksum) says whether
// any tenant's applied migrations changed.
type PartialError struct {
	Result *RunResult
	// Succeeded lists the tenants migrated in this run.
	Succeeded []tenancy.ID
	// Failed maps each failed tenant to its error.
	Failed map[tenancy.ID]error
}

func newPartialError(r *RunResult) *PartialError {
	e := &PartialError{Result: r, Failed: map[tenancy.ID]error{}}
	for _, t := range r.Tenants {
		switch t.State {
		case Succeeded:
			e.Succeeded = append(e.Succeeded, t.Tenant)
		case Failed:
			e.Failed[t.Tenant] = t.Err
		}
	}
	return e
}

func (e *PartialError) Error() string {
	r := e.Result
	var b strings.Builder
	fmt.Fprintf(&b, "migrate: run %d (%s): %d tenant(s) failed, %d succeeded, %d skipped, %d not started",
		r.RunID, r.Direction, r.Failed, r.Succeeded, r.Skipped, r.NotStarted)
	if r.Stopped != nil {
		fmt.Fprintf(&b, "; stopped: %v", r.Stopped)
	}
	n := 0
	for _, t := range r.Tenants {
		if t.State != Failed {
			continue
		}
		if n == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; tenant %q: %v", t.Tenant, t.Err)
		n++
	}
	return b.String()
}

// Unwrap returns Stopped and every failed tenant's error.
func (e *PartialError) Unwrap() []error {
	var out []error
	if e.Result.Stopped != nil {
		out = append(out, e.Result.Stopped)
	}
	for _, t := range e.Result.Tenants {
		if t.State == Failed && t.Err != nil {
			out = append(out, t.Err)
		}
	}
	return out
}

// UnknownClusterError fails a tenant whose catalog row names a cluster that
// is neither Config.Cluster nor a key of Config.Clusters. The other tenants
// of the run go on.
type UnknownClusterError struct {
	Tenant  tenancy.ID
	Cluster string
	// Configured lists the clusters the Migrator knows, the primary first.
	Configured []string
}

func (e *UnknownClusterError) Error() string {
	return fmt.Sprintf("tenant %q lives on cluster %q, which is not configured (configured: %v); pass its admin pool in migrate.Config.Clusters", e.Tenant, e.Cluster, e.Configured)
}

// Is reports whether target is ErrUnknownCluster.
func (e *UnknownClusterError) Is(target error) bool { return target == ErrUnknownCluster }
