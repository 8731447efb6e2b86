package isotest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// DeploymentOpts configures StartDeployment. A nil *DeploymentOpts means all
// defaults.
type DeploymentOpts struct {
	// Migrations are the tenant migrations. Default: none (empty schemas).
	Migrations fs.FS
	// Router configures the router; its zero value means SessionRole with
	// defaults.
	Router router.Config
	// Credentials, when set, gives every tenant a login role
	// (provision.Config.Credentials) and, unless Router.Credentials is set,
	// is the router's too, for TenantLogin mode. Default: none.
	Credentials tenancy.Credentials
	// GatewayShards, when above 1, splits the gateway into that many shard
	// logins (provision.Config.GatewayShards), gives them the gateway's
	// password and, unless Router.GatewayShards is set, makes the router
	// use them. Default: 0, one gateway.
	GatewayShards int
}

// Deployment is a complete bulkhead setup on a fresh Database: an admin pool,
// an initialized Provisioner and a Router on the gateway login.
type Deployment struct {
	DB          *Database
	Admin       *pgxpool.Pool
	Provisioner *provision.Provisioner
	Router      *router.Router
	InitReport  *provision.InitReport
	srv         *Server
}

// StartDeployment creates a Database on srv and sets bulkhead up on it.
// Close it when done.
func StartDeployment(ctx context.Context, srv *Server, opts *DeploymentOpts) (d *Deployment, err error) {
	if opts == nil {
		opts = &DeploymentOpts{}
	}
	db, err := srv.CreateDatabase(ctx)
	if err != nil {
		return nil, err
	}
	d = &Deployment{DB: db, srv: srv}
	defer func() {
		if err != nil {
			_ = d.Close(context.WithoutCancel(ctx))
		}
	}()
	if d.Admin, err = pgxpool.New(ctx, db.AdminDSN); err != nil {
		return nil, err
	}
	d.Provisioner, err = provision.New(d.Admin, &provision.Config{
		Naming:        tenancy.Naming{Prefix: db.Prefix},
		GatewayRole:   db.GatewayRole,
		Migrations:    opts.Migrations,
		Credentials:   opts.Credentials,
		GatewayShards: opts.GatewayShards,
	})
	if err != nil {
		return nil, err
	}
	if d.InitReport, err = d.Provisioner.Init(ctx); err != nil {
		return nil, err
	}
	if opts.GatewayShards > 1 {
		if err = d.Provisioner.SetGatewayPassword(ctx, dsnPassword(db.GatewayDSN)); err != nil {
			return nil, err
		}
	}
	rc := opts.Router
	if rc.GatewayShards == 0 {
		rc.GatewayShards = opts.GatewayShards
	}
	if rc.Credentials == nil {
		rc.Credentials = opts.Credentials
	}
	if d.Router, err = router.New(ctx, db.GatewayDSN, &rc); err != nil {
		return nil, err
	}
	return d, nil
}

// Close closes the pools and drops the database and its roles.
func (d *Deployment) Close(ctx context.Context) error {
	if d.Router != nil {
		d.Router.Close()
	}
	if d.Admin != nil {
		d.Admin.Close()
	}
	return d.srv.DropDatabase(ctx, d.DB)
}

// NewDeployment starts a Deployment on the shared server and closes it when
// the test ends.
func NewDeployment(tb testing.TB, opts *DeploymentOpts) *Deployment {
	tb.Helper()
	srv := SharedServer(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := StartDeployment(ctx, srv, opts)
	if err != nil {
		tb.Fatalf("isotest: starting deployment: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			tb.Errorf("isotest: closing deployment: %v", err)
		}
	})
	return d
}

// NewTenant creates a throwaway tenant with a random ID and purges it when the
// test ends (whatever its status by then).
func (d *Deployment) NewTenant(tb testing.TB, opts *provision.CreateOpts) *tenancy.Tenant {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t, err := d.Provisioner.Create(ctx, tenancy.ID("it-"+randomLower(10)), opts)
	if err != nil {
		tb.Fatalf("isotest: creating tenant: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.RemoveTenant(context.Background(), t.ID); err != nil {
			tb.Errorf("isotest: removing tenant %q: %v", t.ID, err)
		}
	})
	return t
}

// RemoveTenant deletes (if needed) and purges tenant id. A tenant that no
// longer exists is not an error.
func (d *Deployment) RemoveTenant(ctx context.Context, id tenancy.ID) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t, err := d.Provisioner.Get(ctx, id)
	if errors.Is(err, tenancy.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.Status != tenancy.StatusDeleted {
		if _, err := d.Provisioner.Delete(ctx, id, nil); err != nil {
			return fmt.Errorf("deleting: %w", err)
		}
	}
	if _, err := d.Provisioner.Purge(ctx, id); err != nil {
		return fmt.Errorf("purging: %w", err)
	}
	d.Router.Invalidate(id)
	return nil
}
