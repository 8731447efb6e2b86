package migrate

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrChecksum matches a *ChecksumError.
var ErrChecksum = errors.New("applied migration changed")

// MigrationError is a migration that failed to apply to a schema. Unwrap gives
// the driver error; SQLState the PostgreSQL error code when there is one.
type MigrationError struct {
	Schema  string
	Version int64
	Name    string
	Err     error
}

func (e *MigrationError) Error() string {
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
