package isotest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is a fresh database on a Server, set up the way bulkhead expects a
// production database to be: owned by a NOLOGIN role, an admin login with
// CREATEROLE that is a member of the owner, and a gateway login that is
// NOINHERIT and has no privileges. Every role name starts with Prefix, unique
// per database, so many databases can share one server.
type Database struct {
	Name string
	// Prefix is the role and schema prefix to give provision.Config.Naming.
	Prefix string
	// SuperDSN connects to this database as the server's superuser, for test
	// setup and inspection only.
	SuperDSN string
	// AdminDSN connects as AdminRole (LOGIN CREATEROLE, member of OwnerRole).
	AdminDSN string
	// GatewayDSN connects as GatewayRole (LOGIN NOINHERIT, no privileges).
	GatewayDSN string
	// AdminRole, GatewayRole and OwnerRole name the roles created for it.
	AdminRole, GatewayRole, OwnerRole string

	srv *Server
}

// CreateDatabase creates a Database on s. Drop it with DropDatabase.
func (s *Server) CreateDatabase(ctx context.Context) (*Database, error) {
	prefix := "bh" + randomLower(6)
	d := &Database{
		Name:        prefix + "_db",
		Prefix:      prefix,
		AdminRole:   prefix + "_admin",
		GatewayRole: prefix + "_gateway",
		OwnerRole:   prefix + "_dbowner",
		srv:         s,
	}
	if err := d.create(ctx, s, randomLower(24), randomLower(24)); err != nil {
		return nil, err
	}
	return d, nil
}

// create creates d's roles and database on s with the given passwords.
func (d *Database) create(ctx context.Context, s *Server, adminPW, gatewayPW string) error {
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return fmt.Errorf("isotest: connecting as superuser: %w", err)
	}
	defer conn.Close(ctx)
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	for _, stmt := range []string{
		"CREATE ROLE " + q(d.OwnerRole) + " NOLOGIN",
		"CREATE ROLE " + q(d.AdminRole) + " LOGIN CREATEROLE PASSWORD '" + adminPW + "'",
		"GRANT " + q(d.OwnerRole) + " TO " + q(d.AdminRole),
		"CREATE ROLE " + q(d.GatewayRole) + " LOGIN NOINHERIT PASSWORD '" + gatewayPW + "'",
		"CREATE DATABASE " + q(d.Name) + " OWNER " + q(d.OwnerRole),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			_ = d.drop(ctx, conn)
			return fmt.Errorf("isotest: creating database: %s: %w", stmt, err)
		}
	}
	d.SuperDSN = withDatabase(s.DSN(), d.Name)
	d.AdminDSN = s.DSNFor(d.Name, d.AdminRole, adminPW)
	d.GatewayDSN = s.DSNFor(d.Name, d.GatewayRole, gatewayPW)
	return nil
}

// CreateDatabaseLike creates, on s, a database like like (which lives on
// another server): same name, prefix, roles and passwords, set up the same
// way. It is how tests get several clusters that one bulkhead deployment
// spans: role names and the gateway's password are the same everywhere.
// Drop it with s.DropDatabase.
func (s *Server) CreateDatabaseLike(ctx context.Context, like *Database) (*Database, error) {
	pw := dsnPassword
	d := &Database{Name: like.Name, Prefix: like.Prefix, AdminRole: like.AdminRole, GatewayRole: like.GatewayRole, OwnerRole: like.OwnerRole, srv: s}
	return d, d.create(ctx, s, pw(like.AdminDSN), pw(like.GatewayDSN))
}

// dsnPassword returns the password of a URL-style DSN ("" if none).
func dsnPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// DropDatabase drops d and every role whose name starts with its prefix
// (tenant roles included).
func (s *Server) DropDatabase(ctx context.Context, d *Database) error {
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return fmt.Errorf("isotest: connecting as superuser: %w", err)
	}
	defer conn.Close(ctx)
	return d.drop(ctx, conn)
}

func (d *Database) drop(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("isotest: dropping database %q: %w", d.Name, err)
	}
	rows, err := conn.Query(ctx, `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname = $2, rolname`, d.Prefix+"_", d.OwnerRole)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
			return fmt.Errorf("isotest: dropping role %q: %w", r, err)
		}
	}
	return nil
}

// NewDatabase creates a Database on the shared server of this test binary and
// drops it when the test ends.
func NewDatabase(tb testing.TB) *Database {
	tb.Helper()
	srv := SharedServer(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := srv.CreateDatabase(ctx)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, d); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return d
}

// withDatabase returns dsn (a postgres:// URL) pointing at database db.
func withDatabase(dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic("isotest: unparsable server DSN: " + err.Error())
	}
	q := u.Query()
	q.Del("dbname")
	q.Del("database")
	u.RawQuery = q.Encode()
	u.Path, u.RawPath = "/"+db, ""
	return u.String()
}

func randomLower(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	var sb strings.Builder
	for i, c := range b {
		if i == 0 {
			sb.WriteByte(alphabet[int(c)%26])
			continue
		}
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}
