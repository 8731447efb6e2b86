package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Three tenants are provisioned at version 1; version 2 adds a NOT NULL column
// that one tenant's data violates. The fan-out migrates the other two, leaves
// the third at version 1 and says why.
func Example() {
	ctx := context.Background()
	v1 := fstest.MapFS{"0001_notes.up.sql": {Data: []byte("CREATE TABLE notes (id int PRIMARY KEY, body text);")}}
	v2 := fstest.MapFS{
		"0001_notes.up.sql":         v1["0001_notes.up.sql"],
		"0002_body_required.up.sql": {Data: []byte("ALTER TABLE notes ALTER COLUMN body SET NOT NULL;")},
	}

	srv, err := isotest.StartServer(ctx, nil) // a throwaway PostgreSQL
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	d, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Migrations: v1})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)
	for _, id := range []tenancy.ID{"acme", "globex", "initech"} {
		if _, err := d.Provisioner.Create(ctx, id, nil); err != nil {
			log.Fatal(err)
		}
	}
	err = d.Router.InTx(ctx, "globex", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO notes VALUES (1, NULL)")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	m, err := migrate.New(d.Admin, v2, &migrate.Config{Naming: tenancy.Naming{Prefix: d.DB.Prefix}})
	if err != nil {
		log.Fatal(err)
	}
	res, err := m.Up(ctx, nil)
	var pe *migrate.PartialError
	fmt.Println("partial failure:", errors.As(err, &pe))
	for _, t := range res.Tenants {
		line := fmt.Sprint(t.Tenant, " ", t.State, " ", t.From, " -> ", t.To)
		var me *migrate.MigrationError
		if errors.As(t.Err, &me) {
			line += " SQLSTATE " + me.SQLState()
		}
		fmt.Println(line)
	}
	// Output:
	// partial failure: true
	// acme succeeded 1 -> 2
	// globex failed 1 -> 1 SQLSTATE 23502
	// initech succeeded 1 -> 2
}
