package tenancy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestIDValidate(t *testing.T) {
	t.Parallel()
	good := []string{"a", "acme", "acme-brands", "acme_brands.eu", "0b9f8c2e-1d3a-4c5b-9e7f-123456789abc", strings.Repeat("z", 63)}
	for _, s := range good {
		_, err := tenancy.ParseID(s)
		require.NoError(t, err, s)
	}
	bad := map[string]string{
		"":                      "empty",
		strings.Repeat("z", 64): "64 bytes",
		"Acme":                  "uppercase",
		"-acme":                 "leading dash",
		".acme":                 "leading dot",
		"acme brands":           "space",
		"acme'; drop":           "quote",
		`ac"me`:                 "double quote",
		"ac\x00me":              "NUL",
		"acmé":                  "non-ASCII",
		"a/b":                   "slash",
	}
	for s, why := range bad {
		_, err := tenancy.ParseID(s)
		require.ErrorIs(t, err, tenancy.ErrInvalidID, why)
		var ie *tenancy.InvalidIDError
		require.True(t, errors.As(err, &ie))
		require.NotEmpty(t, ie.Reason)
	}
	// Multi-byte characters are counted in bytes, not runes.
	_, err := tenancy.ParseID(strings.Repeat("é", 32))
	require.ErrorContains(t, err, "64 bytes")
}

func TestKeysAndNames(t *testing.T) {
	t.Parallel()
	seen := map[tenancy.Key]bool{}
	for i := 0; i < 1000; i++ {
		k := tenancy.NewKey()
		require.NoError(t, k.Validate())
		require.Len(t, string(k), tenancy.KeyLen)
		require.False(t, seen[k])
		seen[k] = true
	}
	n := tenancy.Naming{Prefix: strings.Repeat("p", tenancy.MaxPrefixLen)}
	require.NoError(t, n.Validate())
	k := tenancy.NewKey()
	for _, name := range []string{n.Schema(k), n.RuntimeRole(k), n.LoginRole(k), n.OwnerRole()} {
		require.LessOrEqual(t, len(name), 63, name)
	}
	require.Equal(t, "bh_owner", tenancy.Naming{}.OwnerRole())
	require.Error(t, tenancy.Naming{Prefix: strings.Repeat("p", tenancy.MaxPrefixLen+1)}.Validate())
	require.Error(t, tenancy.Naming{Prefix: "Bad"}.Validate())
	require.Error(t, tenancy.Naming{Prefix: "1bh"}.Validate())
	require.Error(t, tenancy.Key("short").Validate())
	require.Error(t, tenancy.Key(strings.Repeat("A", tenancy.KeyLen)).Validate())
}

func TestStatusErrors(t *testing.T) {
	t.Parallel()
	for status, sentinel := range map[tenancy.Status]error{
		tenancy.StatusSuspended: tenancy.ErrSuspended,
		tenancy.StatusArchived:  tenancy.ErrArchived,
		tenancy.StatusDeleted:   tenancy.ErrDeleted,
	} {
		tn := &tenancy.Tenant{ID: "acme", Status: status}
		err := tn.Routable()
		require.ErrorIs(t, err, sentinel)
		require.ErrorIs(t, err, tenancy.ErrNotActive)
		require.NotErrorIs(t, err, tenancy.ErrNotFound)
	}
	require.NoError(t, (&tenancy.Tenant{Status: tenancy.StatusActive}).Routable())
	require.ErrorIs(t, &tenancy.NotFoundError{ID: "x"}, tenancy.ErrNotFound)
	require.ErrorIs(t, &tenancy.ExistsError{ID: "x"}, tenancy.ErrExists)
	require.ErrorIs(t, &tenancy.BusyError{ID: "x", Limit: 1, Waited: time.Second}, tenancy.ErrBusy)
	require.ErrorIs(t, &tenancy.TransitionError{ID: "x", Status: tenancy.StatusActive, Op: "restore"}, tenancy.ErrInvalidTransition)
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, tenancy.Limits{MaxConns: 3, StatementTimeout: time.Second}.Validate())
	require.Error(t, tenancy.Limits{MaxConns: -1}.Validate())
	require.Error(t, tenancy.Limits{StatementTimeout: -time.Second}.Validate())
	require.Error(t, tenancy.Limits{StatementTimeout: time.Microsecond}.Validate())
}

func TestContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := tenancy.MustFromContext(ctx)
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	_, ok := tenancy.FromContext(tenancy.WithTenant(ctx, ""))
	require.False(t, ok, "an empty tenant is no tenant")
	id, err := tenancy.MustFromContext(tenancy.WithTenant(ctx, "acme"))
	require.NoError(t, err)
	require.Equal(t, tenancy.ID("acme"), id)
	require.Equal(t, "system", tenancy.ActorFromContext(ctx))
	require.Equal(t, "alice", tenancy.ActorFromContext(tenancy.WithActor(ctx, "alice")))
}
