// Package router hands out tenant-scoped PostgreSQL connections: on a
// connection from a Router, unqualified table names resolve to the tenant's
// schema and only the tenant's privileges apply, enforced by PostgreSQL
// itself.
//
// # Getting a connection
//
//	r, err := router.New(ctx, gatewayDSN, nil) // SessionRole mode
//	conn, err := r.Acquire(ctx, "acme-brands")
//	if err != nil {
//		// tenancy.ErrInvalidID, ErrNotFound, ErrSuspended, ErrArchived,
//		// ErrDeleted, ErrBusy, ErrConnLost ... never a connection
//	}
//	defer conn.Release()
//	rows, err := conn.Query(ctx, "SELECT * FROM agreements")
//
// Conn, Tx and the pgx.Tx passed to InTx satisfy the DBTX interface sqlc
// generates, so generated repositories run on them unchanged.
//
// # Modes
//
// SessionRole (the default) switches a pooled connection of the gateway login
// to the tenant's runtime role for the whole checkout. The switch (SET ROLE,
// SET search_path = <schema>, pg_temp, the tenant's statement_timeout) and its
// verification (current_user, session_user) travel in one round trip, and are
// skipped when the connection already serves the tenant. When a connection
// changes tenant, everything of the previous tenant is reset in that same
// round trip: cursors, LISTEN, advisory locks, temporary objects, prepared
// statements, role, session authorization and every setting.
//
// TxLocal hands out transactions only (Begin, BeginTx, InTx): role,
// search_path and statement_timeout are SET LOCAL in the same round trip as
// BEGIN and end with the transaction, which suits transaction-pooling proxies.
//
// Neither mode protects against SQL written by a tenant: the gateway is a
// member of every active tenant's role, so such SQL can SET ROLE to another
// tenant. Keep tenant input in query parameters, never in SQL text.
//
// # Single statements: DB
//
// r.DB(id) is a handle that checks a connection out for each statement and
// satisfies the same DBTX interface (licensingdb.New(r.DB(id))). It is the
// fast path: one round trip per statement, carrying whatever reset and switch
// the session needs, and the caller's statement prepared once per tenant, SQL
// text and connection (Config.StatementCacheSize) and then only bound and
// executed. A session that has only run DB statements with trusted command
// tags changes tenant with a light reset (RESET ALL, RESET ROLE, and
// pg_advisory_unlock_all in the switch); anything else gets DISCARD ALL
// (SessionRole) or the full reset statements (TxLocal) first. The switch is a
// prepared set_config statement that raises unless the session is back at the
// gateway; any error before the caller's statement makes the server skip it,
// the connection is then destroyed and no rows are returned. In TxLocal the
// pipeline is one implicit transaction (set_config with is_local, no BEGIN or
// COMMIT); behind a transaction pooler DB falls back to unnamed statements. A
// statement that fails or ends the transaction undoes the switch, and the
// session is fully reset on its next checkout. Statements use the extended
// protocol: one statement per call. fastpath.go and stmtcache.go explain why
// each piece is safe.
//
// # Affinity
//
// Config.Affinity keeps idle connections out of the pool, filed under the
// tenant they serve, so a tenant's next checkout needs no switch; an exhausted
// pool lends the least recently parked one to another tenant. It pays off
// when connections sit idle and a few tenants carry most of the traffic. See
// docs/BENCHMARKS.md for measurements.
//
// # Statement caching
//
// pgx caches statements by SQL text, and after a switch the same text means
// another tenant's tables. The router therefore runs the gateway pool with
// pgx's statement and description caches disabled and pgx.QueryExecModeExec
// for Acquire and transactions. DB keeps its own cache instead, keyed by
// tenant and SQL text: each statement is planned under its tenant's
// search_path and only ever executed for that tenant.
//
// # Gateway shards
//
// Config.GatewayShards = N (the same as provision.Config.GatewayShards) serves
// each tenant from a pool logged in as its shard's login, "<DSN user>_s<i>"
// with i = tenancy.ShardOf(key, N), with the DSN's password. The shard pools
// are created on first use and share the Config.MaxConns budget like
// TenantLogin's pools (see shards.go); ShardStat reports them. Each backend
// then computes role memberships, and caches catalog entries, for the
// tenants of one shard only. A tenant the database will not let its shard's
// login switch to fails with ErrRoleRefused.
//
// # Failing closed
//
// Tenant records are cached for Config.StatusTTL (1 s by default): a
// suspension or deletion reaches a router within that bound, and reaches the
// database at once (the gateway loses membership, so new switches fail; the
// router then re-reads the catalog and returns the typed status error).
// A connection that is released broken, busy or inside a transaction is
// closed, never reused. Per-tenant limits that PostgreSQL ignores after
// SET ROLE are enforced here: concurrent checkouts per tenant
// (Config.MaxConnsPerTenant, or the tenant's Limits.MaxConns) and
// statement_timeout.
//
// # Observability
//
// Config.Tracer receives every checkout (AcquireData: tenant, wait, whether
// the connection switched, error); a Tracer that also implements
// ReleaseTracer or QueryTracer receives releases and queries with their
// tenant.
package router
