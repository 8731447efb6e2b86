package router_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/router"
)

func requireSQLState(t *testing.T, err error, code string) {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, "error: %v", err)
}

// TestSameTableNamesIsolated: two tenants with the same tables; each handle
// sees only its own rows, and naming the other tenant's schema fails.
func TestSameTableNamesIsolated(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			d := newDeployment(t, router.Config{Mode: mode})
			a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
			plant(t, d.Router, a.ID)
			plant(t, d.Router, b.ID)
			ctx := ctxT(t)

			for _, tn := range []struct{ self, other string }{{string(a.ID), b.Schema}, {string(b.ID), a.Schema}} {
				err := d.Router.InTx(ctx, tenancyID(tn.self), func(tx pgx.Tx) error {
					rows, err := tx.Query(ctx, "SELECT owner FROM items")
					require.NoError(t, err)
					owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
					require.NoError(t, err)
					require.Equal(t, []string{tn.self}, owners)

					for _, stmt := range []string{
						"SELECT count(*) FROM " + pgx.Identifier{tn.other, "items"}.Sanitize(),
						"SELECT value FROM " + pgx.Identifier{tn.other, "secrets"}.Sanitize(),
						"INSERT INTO " + pgx.Identifier{tn.other, "items"}.Sanitize() + " (owner) VALUES ('intruder')",
						"UPDATE " + pgx.Identifier{tn.other, "secrets"}.Sanitize() + " SET value = 'x'",
						"DELETE FROM " + pgx.Identifier{tn.other, "items"}.Sanitize(),
						"CREATE TABLE " + pgx.Identifier{tn.other, "trojan"}.Sanitize() + " (x int)",
						"CREATE TABLE trojan (x int)",
						"ALTER TABLE items ADD COLUMN x int",
					} {
						_, err := tx.Exec(ctx, "SAVEPOINT s")
						require.NoError(t, err)
						_, err = tx.Exec(ctx, stmt)
						requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
						_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
						require.NoError(t, err)
					}
					return nil
				})
				require.NoError(t, err)
			}
		})
	}
}

// TestResetRoleStillRefuses: a tenant that escapes its role with RESET ROLE
// lands on the gateway, which can read nothing at all.
func TestResetRoleStillRefuses(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, router.Config{})
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	plant(t, d.Router, a.ID)
	plant(t, d.Router, b.ID)
	ctx := ctxT(t)

	conn, err := d.Router.Acquire(ctx, a.ID)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "RESET ROLE")
	require.NoError(t, err)
	var user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
	require.Equal(t, d.DB.GatewayRole, user)
	for _, s := range []string{a.Schema, b.Schema} {
		_, err = conn.Exec(ctx, "SELECT * FROM "+pgx.Identifier{s, "secrets"}.Sanitize())
		requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
	}
	_, err = conn.Exec(ctx, "SELECT * FROM bulkhead.tenants")
	requireSQLState(t, err, pgerrcode.InsufficientPrivilege)
}
