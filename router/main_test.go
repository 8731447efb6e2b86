package router_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestMain(m *testing.M) { isotest.Main(m) }

// testMigrations give every tenant the same table names, so a routing mistake
// shows up as rows with another tenant's marker rather than as an error.
var testMigrations = fstest.MapFS{
	"0001_items.up.sql": {Data: []byte(`
CREATE TABLE items (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner  text NOT NULL,
    note   text NOT NULL DEFAULT ''
);
CREATE TABLE secrets (id int PRIMARY KEY, value text NOT NULL);
`)},
	"0001_items.down.sql": {Data: []byte(`DROP TABLE secrets; DROP TABLE items;`)},
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newDeployment starts a deployment with the test migrations and rc as the
// router configuration.
func newDeployment(t *testing.T, rc router.Config) *isotest.Deployment {
	t.Helper()
	return isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: testMigrations, Router: rc})
}

// newRouter opens a second router on d's database with another configuration.
func newRouter(t *testing.T, d *isotest.Deployment, rc router.Config) *router.Router {
	t.Helper()
	r, err := router.New(ctxT(t), d.DB.GatewayDSN, &rc)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// plant writes an item and a secret marked with the tenant's ID through its
// scoped handle.
func plant(t *testing.T, r *router.Router, id tenancy.ID) {
	t.Helper()
	ctx := ctxT(t)
	require.NoError(t, r.InTx(ctx, id, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (owner, note) VALUES ($1, 'planted')", string(id)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO secrets VALUES (1, $1)", string(id))
		return err
	}))
}

func tenancyID(s string) tenancy.ID { return tenancy.ID(s) }
