// Package provision manages tenants on the control plane: the catalog, the
// database hardening bulkhead relies on, and each tenant's lifecycle.
//
// It runs on the admin (provisioning) connection, a role with CREATEROLE that
// is never used on the request path.
//
// # Setting up
//
//	admin, _ := pgxpool.New(ctx, adminDSN)
//	p, _ := provision.New(admin, &provision.Config{Migrations: tenantMigrations})
//	report, err := p.Init(ctx) // control schema + hardening; idempotent
//	fmt.Print(report)          // what was applied, what needs a superuser
//
// # The database model
//
// Every tenant gets a schema and a NOLOGIN NOINHERIT runtime role named from an
// opaque key (see tenancy.Naming). The schema and every object in it belong to
// the tenant owner role, so a session running as the runtime role can read and
// write rows but cannot grant, alter, add triggers or create anything. The
// gateway login role used by the router is granted membership in the runtime
// role of each active tenant; suspending, archiving or deleting a tenant
// revokes it, so the database itself refuses to switch to that tenant.
//
// # Gateway shards
//
// With Config.GatewayShards = N > 1 the gateway's part on the request path is
// split over N logins, "<GatewayRole>_s<i>"; tenant key k is granted to the
// login of shard tenancy.ShardOf(k, N) only, so no login is a member of more
// than about T/N of T tenants (shard.go says why that matters on
// PostgreSQL). Init creates and hardens the shard logins,
// SetGatewayPassword gives them the gateway's password, and Reshard
// re-grants every tenant after N changed.
//
// # Lifecycle
//
//	Create   -> active
//	Suspend  active -> suspended           Activate suspended|archived -> active
//	Archive  active|suspended -> archived
//	Delete   active|suspended|archived -> deleted (data kept until RetainUntil)
//	Restore  deleted -> active (before RetainUntil)
//	Purge    deleted -> gone (schema, role and catalog row dropped)
//
// Create is one transaction: a failure at any step leaves no role, schema or
// catalog row. Every lifecycle change is recorded in the append-only audit log
// with the actor from the context (tenancy.WithActor).
package provision
