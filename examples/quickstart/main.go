// Command quickstart shows bulkhead end to end in one minute: it starts a
// throwaway PostgreSQL (or uses DATABASE_URL's server), hardens a database,
// provisions two competing brands with the licensing schema, writes through
// each brand's scoped connection and shows that the database itself refuses
// cross-tenant access.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-go/bulkhead/isotest"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	fmt.Println("starting PostgreSQL (set BULKHEAD_TEST_DSN to use your own server)...")
	srv, err := isotest.StartServer(ctx, &isotest.ServerOpts{Log: os.Stderr})
	if err != nil {
		return err
	}
	defer srv.Close()

	d, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations()})
	if err != nil {
		return err
	}
	defer d.Close(context.Background())
	fmt.Printf("\nprovision.Init report:\n%s\n", d.InitReport)

	for _, id := range []tenancy.ID{"acme-brands", "globex-licensing"} {
		t, err := d.Provisioner.Create(ctx, id, nil)
		if err != nil {
			return err
		}
		fmt.Printf("created tenant %-17s schema %s (version %d)\n", t.ID, t.Schema, t.SchemaVersion)
		// Each brand writes through its own scoped connection, with unqualified names.
		err = d.Router.InTx(ctx, id, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO brands (name, description) VALUES ($1, 'confidential roadmap')", string(id)+" flagship")
			return err
		})
		if err != nil {
			return err
		}
	}

	conn, err := d.Router.Acquire(ctx, "acme-brands")
	if err != nil {
		return err
	}
	defer conn.Release()
	var names []string
	rows, _ := conn.Query(ctx, "SELECT name FROM brands")
	if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	fmt.Printf("\nacme-brands sees brands: %v\n", names)

	globex, err := d.Provisioner.Get(ctx, "globex-licensing")
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "SELECT * FROM "+pgx.Identifier{globex.Schema, "brands"}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		fmt.Printf("acme-brands reading globex's schema: %s (SQLSTATE %s)\n", pgErr.Message, pgErr.Code)
	} else {
		return fmt.Errorf("expected the database to refuse, got %v", err)
	}

	if _, err := d.Provisioner.Suspend(ctx, "globex-licensing"); err != nil {
		return err
	}
	d.Router.Invalidate("globex-licensing")
	_, err = d.Router.Acquire(ctx, "globex-licensing")
	fmt.Printf("acquiring suspended globex-licensing: %v (errors.Is ErrSuspended: %v)\n", err, errors.Is(err, tenancy.ErrSuspended))
	_, err = d.Router.Acquire(ctx, "Robert'); DROP TABLE brands;--")
	fmt.Printf("acquiring a malformed tenant id: %v\n", err)
	return nil
}
