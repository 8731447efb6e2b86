package provision

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/internal/dbsqlc"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Login roles (the router's TenantLogin mode).
//
// When Config.Credentials is set, every tenant also gets a LOGIN role,
// Naming.LoginRole(key), that is a member of exactly its runtime role and of
// nothing else. The role is INHERIT, so a session logged in as it has the
// runtime role's privileges without a SET ROLE: the session user itself
// belongs to one tenant, and no SET ROLE, RESET ROLE or SET SESSION
// AUTHORIZATION can reach another tenant. (NOINHERIT plus a SET ROLE on
// connect would add a round trip per connection and leave a privilege-less
// session after RESET ROLE, for no gain in isolation.)
//
// The password is never sent to the server in clear text: the provisioner
// computes a SCRAM-SHA-256 verifier (random salt) from the Credentials'
// password and sets that, so neither the server log nor pg_authid ever holds
// anything a client could log in with.

// scramIterations is the PBKDF2 iteration count of the verifiers set on
// login roles. Key stretching protects guessable passwords; a derived login
// password carries 256 random bits, which no number of iterations makes
// easier or harder to guess, while every iteration costs the router and the
// server CPU on every new connection (4096, PostgreSQL's default, costs a few
// milliseconds per login on a small machine, which a pool that evicts and
// reconnects under its budget pays constantly).
const scramIterations = 16

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password, in the format of pg_authid.rolpassword. The password must be
// ASCII (SASLprep is then the identity), as derived passwords are.
func scramVerifier(password string) (string, error) {
	for i := 0; i < len(password); i++ {
		if password[i] < 0x21 || password[i] > 0x7e {
			return "", fmt.Errorf("login password must be printable ASCII without spaces")
		}
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(scramIterations) + ":" + enc(salt) + "$" + enc(storedKey[:]) + ":" + enc(serverKey), nil
}

// literal quotes s as an SQL string literal. The verifiers it is used for
// hold only base64 characters, '$' and ':', but quote anyway.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// loginEnabled reports whether login roles are provisioned.
func (p *Provisioner) loginEnabled() bool { return p.cfg.Credentials != nil }

// roleExists reports whether role name exists.
func roleExists(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", name).Scan(&ok)
	return ok, err
}

// ensureLoginTx creates tenant key's login role, or brings an existing one
// back in line: member of runtime role only, INHERIT, the password from the
// Credentials, search_path pinned to the schema, CONNECT on the database,
// and LOGIN or NOLOGIN as canLogin says.
func (p *Provisioner) ensureLoginTx(ctx context.Context, tx pgx.Tx, key tenancy.Key, schema, runtime string, canLogin bool) error {
	login := p.cfg.Naming.LoginRole(key)
	pw, err := p.cfg.Credentials.LoginPassword(ctx, key)
	if err != nil {
		return fmt.Errorf("deriving the login password: %w", err)
	}
	verifier, err := scramVerifier(pw)
	if err != nil {
		return err
	}
	exists, err := roleExists(ctx, tx, login)
	if err != nil {
		return fmt.Errorf("looking up login role: %w", err)
	}
	attrs := "LOGIN"
	if !canLogin {
		attrs = "NOLOGIN"
	}
	// A new role starts NOSUPERUSER NOREPLICATION NOBYPASSRLS; only a
	// superuser could have changed those on an existing one, and only a
	// superuser may change them back, so they are checked, not set.
	attrs += " INHERIT NOCREATEDB NOCREATEROLE PASSWORD " + literal(verifier)
	var stmts []string
	if exists {
		var unsafe bool
		if err := tx.QueryRow(ctx, "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1", login).Scan(&unsafe); err != nil {
			return fmt.Errorf("reading login role attributes: %w", err)
		}
		if unsafe {
			return fmt.Errorf("login role %q has SUPERUSER, REPLICATION or BYPASSRLS; a superuser must remove them (ALTER ROLE %s NOSUPERUSER NOREPLICATION NOBYPASSRLS)", login, quote(login))
		}
		stmts = append(stmts, "ALTER ROLE "+quote(login)+" "+attrs)
		// Memberships someone added by hand would let the session reach
		// beyond its tenant: drop them all, then grant the one it needs.
		rows, err := tx.Query(ctx, `SELECT r.rolname FROM pg_catalog.pg_auth_members m
			JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
			JOIN pg_catalog.pg_roles u ON u.oid = m.member
			WHERE u.rolname = $1 AND r.rolname <> $2`, login, runtime)
		if err != nil {
			return fmt.Errorf("listing the login role's memberships: %w", err)
		}
		extra, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("listing the login role's memberships: %w", err)
		}
		for _, r := range extra {
			stmts = append(stmts, "REVOKE "+quote(r)+" FROM "+quote(login))
		}
		stmts = append(stmts, "GRANT "+quote(runtime)+" TO "+quote(login))
	} else {
		stmts = append(stmts, "CREATE ROLE "+quote(login)+" "+attrs+" IN ROLE "+quote(runtime))
	}
	stmts = append(stmts,
		"ALTER ROLE "+quote(login)+" SET search_path TO "+quote(schema)+", pg_temp",
		"GRANT CONNECT ON DATABASE "+quote(p.database(ctx, tx))+" TO "+quote(login),
	)
	if _, err := tx.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
		return fmt.Errorf("setting up login role %q: %w", login, err)
	}
	return nil
}

// setLoginTx makes tenant key's login role able to log in or not, if it
// exists; a missing role is created when login is being enabled.
func (p *Provisioner) setLoginTx(ctx context.Context, tx pgx.Tx, key tenancy.Key, schema, runtime string, canLogin bool) error {
	if canLogin {
		return p.ensureLoginTx(ctx, tx, key, schema, runtime, true)
	}
	login := p.cfg.Naming.LoginRole(key)
	exists, err := roleExists(ctx, tx, login)
	if err != nil || !exists {
		return err
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+quote(login)+" NOLOGIN"); err != nil {
		return fmt.Errorf("disabling login role %q: %w", login, err)
	}
	return nil
}

// dropLoginTx drops tenant key's login role if it exists, whatever the
// configuration (a deployment may have turned login roles off since).
func (p *Provisioner) dropLoginTx(ctx context.Context, tx pgx.Tx, key tenancy.Key) error {
	return dropRole(ctx, tx, p.cfg.Naming.LoginRole(key))
}

// EnsureLogin creates or repairs tenant id's login role from the configured
// Credentials: membership in its runtime role only, the current password,
// the pinned search_path, and LOGIN if the tenant is active (NOLOGIN
// otherwise); with Config.NoGatewayMembership it also takes the gateway's
// membership in the runtime role away. Use it to give login roles to tenants created before
// Config.Credentials was set, and to re-set every password after rotating
// the master secret. It needs Config.Credentials.
func (p *Provisioner) EnsureLogin(ctx context.Context, id tenancy.ID) (*tenancy.Tenant, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if !p.loginEnabled() {
		return nil, fmt.Errorf("provision: EnsureLogin for tenant %q: Config.Credentials is not set", id)
	}
	var out *tenancy.Tenant
	err := p.controlTx(ctx, func(tx pgx.Tx, q *dbsqlc.Queries) error {
		row, err := q.GetTenantForUpdate(ctx, string(id))
		if err != nil {
			return interpretError(id, err)
		}
		active := row.Status == string(tenancy.StatusActive)
		if _, err := p.onCluster(ctx, tx, row.Cluster, func(tx pgx.Tx) error {
			if err := p.ensureLoginTx(ctx, tx, tenancy.Key(row.Key), row.SchemaName, row.RoleName, active); err != nil {
				return err
			}
			if p.cfg.NoGatewayMembership {
				if _, err := tx.Exec(ctx, "REVOKE "+quote(row.RoleName)+" FROM "+quote(p.gatewayFor(tenancy.Key(row.Key)))); err != nil {
					return fmt.Errorf("revoking the gateway's membership: %w", err)
				}
			}
			_, err := tx.Exec(ctx, p.controlPath())
			return err
		}); err != nil {
			return err
		}
		if err := audit(ctx, q, id, "tenant.login", p.cfg.Naming.LoginRole(tenancy.Key(row.Key)), map[string]any{"login": active}); err != nil {
			return err
		}
		out, err = tenantRecord(row)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provision: ensuring the login role of tenant %q: %w", id, err)
	}
	return out, nil
}
