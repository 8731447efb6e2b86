package isotest_test

import (
	"context"
	"errors"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-go/bulkhead/isotest"
)

func TestMain(m *testing.M) { isotest.Main(m) }

// connect connects to dsn without falling back to PGPASSWORD or a .pgpass
// file, so that a DSN without a password really has none.
func connect(ctx context.Context, t *testing.T, dsn string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("ParseConfig(%q): %v", dsn, err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", dsn, err)
	}
	if _, set := u.User.Password(); !set {
		cfg.Password = ""
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func TestSharedServerVersion(t *testing.T) {
	srv := isotest.SharedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connect(ctx, t, srv.DSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "PostgreSQL ") {
		t.Fatalf("version() = %q", version)
	}
	t.Logf("server: %s", version)
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Error("DSN() is not a superuser DSN")
	}
	if srv2 := isotest.SharedServer(t); srv2 != srv {
		t.Error("SharedServer returned a second server")
	}
}

func TestPasswordRequired(t *testing.T) {
	srv := isotest.SharedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := connect(ctx, t, srv.DSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)
	role := "isotest_pw_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD 'right-password'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := connect(ctx, t, srv.DSN()); err == nil {
			c.Exec(ctx, "DROP ROLE IF EXISTS "+role)
			c.Close(ctx)
		}
	})

	// The right password works, through DSNFor.
	c, err := connect(ctx, t, srv.DSNFor("postgres", role, "right-password"))
	if err != nil {
		t.Fatalf("login with the right password: %v", err)
	}
	var who string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if who != role {
		t.Fatalf("current_user = %q, want %q", who, role)
	}

	for _, tc := range []struct{ name, user, password string }{
		{"superuser without password", "postgres", ""},
		{"role without password", role, ""},
		{"wrong password", role, "wrong-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(ctx, t, srv.DSNFor("postgres", tc.user, tc.password))
			if err == nil {
				c.Close(ctx)
				t.Fatal("host connection succeeded; want it refused")
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code != "28P01" {
				t.Fatalf("SQLSTATE %s (%v), want 28P01 invalid_password", pgErr.Code, err)
			}
			if !strings.Contains(err.Error(), "password") {
				t.Fatalf("error does not mention the password: %v", err)
			}
		})
	}
}

func TestDSNFor(t *testing.T) {
	srv := isotest.SharedServer(t)
	for _, tc := range []struct{ db, user, pw, want string }{
		{"app", "alice", "s3cr/t", "alice:s3cr%2Ft@"},
		{"other", "bob", "", "//bob@"},
	} {
		dsn := srv.DSNFor(tc.db, tc.user, tc.pw)
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("DSNFor: %q: %v", dsn, err)
		}
		if cfg.Database != tc.db || cfg.User != tc.user || !strings.Contains(dsn, tc.want) {
			t.Errorf("DSNFor(%q, %q, %q) = %q", tc.db, tc.user, tc.pw, dsn)
		}
	}
}

func TestStartServerClose(t *testing.T) {
	t.Setenv("BULKHEAD_TEST_DSN", "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	start := time.Now()
	srv, err := isotest.StartServer(ctx, &isotest.ServerOpts{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartServer took %s; log:\n%s", time.Since(start).Round(time.Millisecond), log.String())
	conn, err := connect(ctx, t, srv.DSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	conn.Close(ctx)
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if conn, err := connect(ctx, t, srv.DSN()); err == nil {
		conn.Close(ctx)
		t.Fatal("server still accepts connections after Close")
	}

	// A server given by DSN is used as it is, and Close leaves it running.
	shared := isotest.SharedServer(t)
	ext, err := isotest.StartServer(ctx, &isotest.ServerOpts{DSN: shared.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	if ext.DSN() != shared.DSN() {
		t.Errorf("DSN() = %q, want %q", ext.DSN(), shared.DSN())
	}
	if err := ext.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err = connect(ctx, t, shared.DSN())
	if err != nil {
		t.Fatalf("shared server gone after closing an external-DSN Server: %v", err)
	}
	conn.Close(ctx)
}

func TestNoServerError(t *testing.T) {
	t.Setenv("BULKHEAD_TEST_DSN", "")
	t.Setenv("BULKHEAD_TEST_PG_BINDIR", t.TempDir()) // searched alone: holds no binaries
	t.Setenv("PATH", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := isotest.StartServer(ctx, nil)
	if err == nil {
		srv.Close()
		t.Fatal("StartServer succeeded without binaries")
	}
	if !errors.Is(err, isotest.ErrNoServer) {
		t.Errorf("errors.Is(err, ErrNoServer) = false for %v", err)
	}
	var nse *isotest.NoServerError
	if !errors.As(err, &nse) {
		t.Fatalf("error is %T, want *NoServerError: %v", err, err)
	}
	msg := err.Error()
	t.Log(msg)
	wants := []string{"BULKHEAD_TEST_DSN", "BULKHEAD_TEST_PG_BINDIR", "isodocker"}
	if runtime.GOOS == "linux" && !strings.Contains(msg, "dnf install") {
		wants = append(wants, "apt-get install postgresql-15, or set BULKHEAD_TEST_DSN")
	}
	for _, want := range wants {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}
