package isotest_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
)

// ExampleAudit audits a fresh deployment's cross-schema defences and writes
// the SARIF report a code-scanning dashboard would ingest.
func ExampleAudit() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := isotest.StartServer(ctx, nil) // $BULKHEAD_TEST_DSN or local PostgreSQL binaries
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	d, err := isotest.StartDeployment(ctx, srv, &isotest.DeploymentOpts{Router: router.Config{StatementTimeout: time.Second}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(ctx)

	rep, err := isotest.Audit(ctx, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin},
		&isotest.RunOpts{Classes: []isotest.Class{isotest.ClassCrossSchema}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Results {
		fmt.Println(r.ID, r.Verdict, r.Observed)
	}
	fmt.Println("leaks:", len(rep.Leaks()))
	f, err := os.CreateTemp("", "isotest-*.sarif")
	if err == nil {
		defer os.Remove(f.Name())
		defer f.Close()
		fmt.Println("sarif written:", rep.WriteSARIF(f) == nil)
	}
	// Output:
	// XS-001 pass blocked
	// XS-002 pass blocked
	// XS-003 pass blocked
	// XS-004 pass blocked
	// XS-005 pass blocked
	// XS-006 pass blocked
	// XS-007 pass blocked
	// XS-008 pass blocked
	// leaks: 0
	// sarif written: true
}
