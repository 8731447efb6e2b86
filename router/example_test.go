package router_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/isotest"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Two brands share one database; each handle sees only its own brand's rows,
// and a suspended brand gets no connection at all.
func Example() {
	ctx := context.Background()
	srv, err := isotest.StartServer(ctx, nil) // a throwaway PostgreSQL; use your own DSNs in production
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	d, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations()})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)
	p, r := d.Provisioner, d.Router // provision.New(adminPool, cfg) and router.New(ctx, gatewayDSN, cfg)

	for _, id := range []tenancy.ID{"acme-brands", "globex"} {
		if _, err := p.Create(ctx, id, nil); err != nil {
			log.Fatal(err)
		}
		err := r.InTx(ctx, id, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO brands (name) VALUES ($1)", string(id)+" flagship")
			return err
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	conn, err := r.Acquire(ctx, "acme-brands")
	if err != nil {
		log.Fatal(err)
	}
	rows, _ := conn.Query(ctx, "SELECT name FROM brands")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Release()
	fmt.Println(names, err)

	if _, err := p.Suspend(ctx, "globex"); err != nil {
		log.Fatal(err)
	}
	r.Invalidate("globex")
	_, err = r.Acquire(ctx, "globex")
	fmt.Println(err, errors.Is(err, tenancy.ErrSuspended))
	fmt.Println(r.Mode())
	// Output:
	// [acme-brands flagship] <nil>
	// tenant "globex" is suspended true
	// SessionRole
}
