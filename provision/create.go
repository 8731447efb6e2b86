package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/migrate"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// CreateOpts are options for Create. A nil *CreateOpts means all defaults.
type CreateOpts struct {
	// Name is a human-readable name (at most 200 bytes). Default: the ID.
	Name string
	// Limits are enforced by the router. Default: the router's defaults.
	Limits tenancy.Limits
	// Settings is free-form JSON the application keeps with the tenant.
	// Default: {}.
	Settings json.RawMessage
}

// The steps of Create, in order. Tests inject failures at each.
const (
	stepCatalog    = "catalog"
	stepRole       = "role"
	stepSchema     = "schema"
	stepGrants     = "grants"
	stepMigrations = "migrations"
	stepMembership = "membership"
	stepLogin      = "login"
	stepActivate   = "activate"
	stepCommit     = "commit"
)

// CreateSteps lists Create's steps in order (for failure-injection tests and
// progress displays).
var CreateSteps = []string{stepCatalog, stepRole, stepSchema, stepGrants, stepMigrations, stepMembership, stepLogin, stepActivate, stepCommit}

func (p *Provisioner) step(name string) error {
	if p.failAt == nil {
		return nil
	}
	if err := p.failAt(name); err != nil {
		return fmt.Errorf("step %s: %w", name, err)
	}
	return nil
}

// Create provisions tenant id in one transaction: the catalog row, a NOLOGIN
// NOINHERIT runtime role, a schema owned by the tenant owner role, default
// privileges giving the runtime role DML and nothing else, the tenant
// migrations applied as the owner, membership of the gateway in the runtime
// role, the tenant's login role when Config.Credentials is set, status active
// and an audit event. If any step fails, nothing is left:
// no role, no schema, no catalog row.
//
// Creating a tenant whose ID exists, in any status, returns an *ExistsError
// (errors.Is(err, tenancy.ErrExists)).
func (p *Provisioner) Create(ctx context.Context, id tenancy.ID, opts *CreateOpts) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &CreateOpts{}
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = string(id)
	}
	if len(name) > 200 {
		return nil, fmt.Errorf("provision: CreateOpts.Name is %d bytes long, the limit is 200", len(name))
	}
	limits, err := json.Marshal(opts.Limits)
	if err != nil {
		return nil, err
	}
	settings := []byte(opts.Settings)
	if len(settings) == 0 {
		settings = []byte("{}")
	} else if !json.Valid(settings) {
		return nil, fmt.Errorf("provision: CreateOpts.Settings is not valid JSON")
	}

	key := tenancy.NewKey()
	schema := p.cfg.Naming.Schema(key)
	role := p.cfg.Naming.RuntimeRole(key)
	owner := p.cfg.Naming.OwnerRole()

	var out *tenancy.Tenant
	var cluster string
	var remoteCommitted bool
	err = p.controlTx(ctx, func(tx pgx.Tx, q *dbsqlc.Queries) error {
		if err := p.step(stepCatalog); err != nil {
			return err
		}
		var err error
		if cluster, err = p.place(ctx, q, id); err != nil {
			return err
		}
		if _, err := q.InsertTenant(ctx, dbsqlc.InsertTenantParams{
			ID: string(id), Key: string(key), Name: name, SchemaName: schema, RoleName: role,
			Cluster: cluster, Limits: limits, Settings: settings,
		}); err != nil {
			return interpretError(id, err)
		}

		// Role, schema, grants, migrations, memberships: on the tenant's
		// cluster, in the catalog's transaction when that is the primary,
		// else in one of their own that commits just before the catalog's.
		var res *migrate.ApplyResult
		build := func(tx pgx.Tx) error {
			if err := p.step(stepRole); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "CREATE ROLE "+quote(role)+" NOLOGIN NOINHERIT"); err != nil {
				return fmt.Errorf("creating runtime role: %w", err)
			}

			if err := p.step(stepSchema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+quote(schema)+" AUTHORIZATION "+quote(owner)); err != nil {
				return fmt.Errorf("creating schema: %w", err)
			}

			if err := p.step(stepGrants); err != nil {
				return err
			}
			// As the owner: the version table first (so default privileges do not
			// give the tenant write access to it), then the grants every future
			// object inherits. One round trip.
			if _, err := tx.Exec(ctx, grantsSQL(owner, schema, role)); err != nil {
				return fmt.Errorf("granting privileges: %w", err)
			}

			if err := p.step(stepMigrations); err != nil {
				return err
			}
			var err error
			res, err = migrate.ApplyTx(ctx, tx, schema, p.migrations, &migrate.ApplyOpts{Role: owner, LockTimeout: p.cfg.MigrationLockTimeout})
			if err != nil {
				return err
			}

			if err := p.step(stepMembership); err != nil {
				return err
			}
			membership := "RESET ROLE; " + p.controlPath()
			if !p.cfg.NoGatewayMembership {
				membership += "; GRANT " + quote(role) + " TO " + quote(p.gatewayFor(key))
			}
			if _, err := tx.Exec(ctx, membership); err != nil {
				return fmt.Errorf("granting the gateway membership: %w", err)
			}

			if err := p.step(stepLogin); err != nil {
				return err
			}
			if p.loginEnabled() {
				if err := p.ensureLoginTx(ctx, tx, key, schema, role, true); err != nil {
					return err
				}
			}

			return nil
		}
		if remoteCommitted, err = p.onCluster(ctx, tx, cluster, build); err != nil {
			return err
		}

		if err := p.step(stepActivate); err != nil {
			return err
		}
		if err := q.SetTenantSchemaVersion(ctx, dbsqlc.SetTenantSchemaVersionParams{ID: string(id), SchemaVersion: res.To}); err != nil {
			return err
		}
		row, err := q.SetTenantStatus(ctx, dbsqlc.SetTenantStatusParams{ID: string(id), Status: string(tenancy.StatusActive)})
		if err != nil {
			return err
		}
		if err := audit(ctx, q, id, "tenant.create", schema, map[string]any{"schema_version": res.To}); err != nil {
			return err
		}
		if out, err = tenantRecord(row); err != nil {
			return err
		}
		return p.step(stepCommit)
	})
	if err != nil {
		if remoteCommitted {
			// The catalog did not commit: remove what the other cluster did.
			if cerr := p.dropTenantObjects(ctx, cluster, key, schema, role); cerr != nil {
				err = fmt.Errorf("%w (and removing its role and schema from cluster %q failed: %v; drop %s and %s there by hand)", err, cluster, cerr, schema, role)
			}
		}
		return nil, fmt.Errorf("provision: creating tenant %q: %w", id, err)
	}
	return out, nil
}

func grantsSQL(owner, schema, role string) string {
	o, s, r := quote(owner), quote(schema), quote(role)
	return strings.Join([]string{
		"SET LOCAL ROLE " + o,
		"CREATE TABLE " + s + "." + quote(migrate.VersionTable) + ` (
	version    bigint      PRIMARY KEY,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now())`,
		"GRANT USAGE ON SCHEMA " + s + " TO " + r,
		"GRANT SELECT ON " + s + "." + quote(migrate.VersionTable) + " TO " + r,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + " IN SCHEMA " + s + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + r,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + " IN SCHEMA " + s + " GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO " + r,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + " IN SCHEMA " + s + " GRANT EXECUTE ON FUNCTIONS TO " + r,
		"ALTER DEFAULT PRIVILEGES FOR ROLE " + o + " IN SCHEMA " + s + " GRANT USAGE ON TYPES TO " + r,
	}, "; ")
}
