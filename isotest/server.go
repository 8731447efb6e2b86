package isotest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Environment variables read by StartServer.
const (
	// envTestDSN names an existing server to use instead of starting one.
	envTestDSN = "BULKHEAD_TEST_DSN"
	// envPGBinDir names the only directory searched for initdb and pg_ctl. When
	// it is set, PATH, pg_config and the distribution directories are not
	// searched. It selects one of several installed PostgreSQL versions.
	envPGBinDir = "BULKHEAD_TEST_PG_BINDIR"
)

// Server is a PostgreSQL server for tests and local runs.
//
// A Server is either an existing server named by a DSN (Close then does
// nothing), a throwaway server started from local PostgreSQL binaries, or a
// server started by a registered Provider such as the Docker one in
// isotest/isodocker. All methods are safe for concurrent use.
type Server struct {
	dsn string

	stop      func() error
	closeOnce sync.Once
	closeErr  error
}

// ServerOpts configures StartServer. A nil *ServerOpts is the same as a zero
// one.
type ServerOpts struct {
	// DSN of an existing server to use (superuser or CREATEROLE+CREATEDB). Default: $BULKHEAD_TEST_DSN.
	DSN string
	// Log receives progress lines (which provider was chosen, where the data dir is). Default: discard.
	Log io.Writer
}

// ErrNoServer is matched, with errors.Is, by the error StartServer returns
// when it finds no way to get a PostgreSQL server. The error itself is a
// *NoServerError.
var ErrNoServer = errors.New("isotest: no PostgreSQL server available")

// NoServerError is the error StartServer returns when no DSN is configured, no
// PostgreSQL server binaries are installed and no registered Provider is
// available. Its message says what to install.
type NoServerError struct {
	// Searched lists the places that were searched for initdb and pg_ctl.
	Searched []string
	// Providers lists the registered providers that reported themselves
	// unavailable, by name.
	Providers []string
	// Hint says what to install or set, for example
	// "apt-get install postgresql-15, or set BULKHEAD_TEST_DSN".
	Hint string
}

// Error returns a message naming what was searched and what to install.
func (e *NoServerError) Error() string {
	var b strings.Builder
	b.WriteString("isotest: no PostgreSQL server for tests: " + envTestDSN + " is not set")
	if len(e.Searched) > 0 {
		b.WriteString(", no PostgreSQL server binaries (initdb, pg_ctl) in " + strings.Join(e.Searched, ", "))
	}
	if len(e.Providers) == 0 {
		b.WriteString(", no Docker provider registered (blank-import github.com/bulkhead-go/bulkhead/isotest/isodocker to enable one)")
	} else {
		b.WriteString(", provider(s) not available: " + strings.Join(e.Providers, ", "))
	}
	if e.Hint != "" {
		b.WriteString("; to fix: " + e.Hint)
	}
	return b.String()
}

// Is reports whether target is ErrNoServer.
func (e *NoServerError) Is(target error) bool { return target == ErrNoServer }

// installHint returns what to install on this operating system.
func installHint() string {
	const dsn = "set " + envTestDSN + "=postgres://USER:PASSWORD@HOST:5432/postgres (a superuser, or a role with CREATEROLE and CREATEDB)"
	switch runtime.GOOS {
	case "darwin":
		return "brew install postgresql@15 (and put its bin directory on PATH), or " + dsn
	case "linux":
		if _, err := os.Stat("/etc/redhat-release"); err == nil {
			return "dnf install postgresql15-server (PGDG) or postgresql-server, or " + dsn
		}
		return "apt-get install postgresql-15, or " + dsn
	default:
		return "install the PostgreSQL 15 server (initdb, pg_ctl, postgres) and put its bin directory on PATH, or " + dsn
	}
}

// Provider starts a server some other way (used by isotest/isodocker).
type Provider interface {
	// Name names the provider in logs and errors, for example "docker".
	Name() string
	// Available reports, quickly (in about a second), whether Start can work
	// here, for example whether a Docker engine answers.
	Available(ctx context.Context) bool
	// Start starts a server and returns a superuser DSN (postgres:// URL form)
	// to its "postgres" database, and a function that stops and removes it.
	Start(ctx context.Context) (dsn string, stop func() error, err error)
}

var providers struct {
	mu   sync.Mutex
	list []Provider
}

// RegisterProvider adds p to the providers StartServer tries, in registration
// order, when neither a DSN nor local PostgreSQL binaries are available. It is
// meant to be called from an init function, such as isotest/isodocker's.
func RegisterProvider(p Provider) {
	providers.mu.Lock()
	defer providers.mu.Unlock()
	providers.list = append(providers.list, p)
}

func registeredProviders() []Provider {
	providers.mu.Lock()
	defer providers.mu.Unlock()
	return append([]Provider(nil), providers.list...)
}

// StartServer returns a server: opts.DSN / $BULKHEAD_TEST_DSN if set; else local binaries
// (PATH, then `pg_config --bindir`, then /usr/lib/postgresql/<highest>/bin); else a registered Docker provider
// (see RegisterProvider) when a Docker engine answers; else an error (type *NoServerError, errors.Is(err, ErrNoServer))
// whose message says exactly what to install: e.g. "apt-get install postgresql-15, or set BULKHEAD_TEST_DSN".
//
// $BULKHEAD_TEST_PG_BINDIR, when set, is the only directory searched for
// the local binaries. A local server listens on 127.0.0.1 on a free port,
// requires scram-sha-256 passwords for TCP connections, and runs as the
// "postgres" OS user when the process is root (initdb refuses root). Its data
// directory is removed by Close and, if the process dies without calling
// Close, by a small watchdog process started with it.
//
// A DSN that is given is checked with one connection before StartServer
// returns. The caller must Close the returned server.
func StartServer(ctx context.Context, opts *ServerOpts) (*Server, error) {
	if opts == nil {
		opts = &ServerOpts{}
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "isotest: "+format+"\n", args...)
	}

	dsn, source := opts.DSN, "ServerOpts.DSN"
	if dsn == "" {
		dsn, source = os.Getenv(envTestDSN), envTestDSN
	}
	if dsn != "" {
		u, err := normalizeDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("isotest: %s: %w", source, err)
		}
		if err := ping(ctx, u); err != nil {
			return nil, fmt.Errorf("isotest: %s: cannot connect: %w", source, err)
		}
		logf("using the existing server from %s", source)
		return &Server{dsn: u, stop: func() error { return nil }}, nil
	}

	binDir, searched := findBinDir()
	if binDir != "" {
		start := time.Now()
		dsn, stop, err := startLocal(ctx, binDir, logf)
		if err != nil {
			return nil, err
		}
		logf("local server ready in %s", time.Since(start).Round(time.Millisecond))
		return &Server{dsn: dsn, stop: stop}, nil
	}
	logf("no local PostgreSQL binaries (searched %s)", strings.Join(searched, ", "))

	var unavailable []string
	for _, p := range registeredProviders() {
		if !p.Available(ctx) {
			logf("provider %s is not available", p.Name())
			unavailable = append(unavailable, p.Name())
			continue
		}
		logf("starting a server with provider %s", p.Name())
		start := time.Now()
		dsn, stop, err := p.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("isotest: provider %s: %w", p.Name(), err)
		}
		if stop == nil {
			stop = func() error { return nil }
		}
		logf("provider %s: server ready in %s", p.Name(), time.Since(start).Round(time.Millisecond))
		return &Server{dsn: dsn, stop: stop}, nil
	}
	return nil, &NoServerError{Searched: searched, Providers: unavailable, Hint: installHint()}
}

// DSN returns a superuser DSN, in postgres:// URL form, to the server's
// "postgres" maintenance database. For a server given by DSN it is that DSN,
// converted to URL form if it was in keyword/value form.
func (s *Server) DSN() string { return s.dsn }

// DSNFor returns a DSN to the same host and port with another database, user
// and password. An empty password leaves the password out, so that the
// connection is attempted without one.
func (s *Server) DSNFor(dbname, user, password string) string {
	u, err := url.Parse(s.dsn)
	if err != nil {
		// s.dsn is produced by this package and always parses.
		panic("isotest: unparsable server DSN: " + err.Error())
	}
	q := u.Query()
	for _, k := range []string{"user", "password", "dbname", "database"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	u.Path = "/" + dbname
	u.RawPath = ""
	return u.String()
}

// Close stops the server if this package or a Provider started it, and
// removes its data. A local server is stopped with `pg_ctl stop -m
// immediate`. Close is idempotent: later calls return the first call's
// result. Closing a server given by DSN does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.closeErr = s.stop()
		}
	})
	return s.closeErr
}

// ping opens and closes one connection to dsn.
func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// normalizeDSN returns dsn in postgres:// URL form. URL DSNs are returned
// as they are; keyword/value DSNs ("host=... user=...") are converted.
func normalizeDSN(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if _, err := url.Parse(dsn); err != nil {
			return "", fmt.Errorf("invalid DSN URL: %w", err)
		}
		return dsn, nil
	}
	kv, err := parseKeywordValue(dsn)
	if err != nil {
		return "", err
	}
	u := &url.URL{Scheme: "postgres"}
	if user, ok := kv["user"]; ok {
		if pw, ok := kv["password"]; ok {
			u.User = url.UserPassword(user, pw)
		} else {
			u.User = url.User(user)
		}
		delete(kv, "password")
	}
	if db, ok := kv["dbname"]; ok {
		u.Path = "/" + db
	}
	host, port := kv["host"], kv["port"]
	if host != "" && !strings.Contains(host, "/") {
		hosts := strings.Split(host, ",")
		ports := strings.Split(port, ",")
		parts := make([]string, len(hosts))
		for i, h := range hosts {
			if strings.Contains(h, ":") {
				h = "[" + h + "]" // IPv6 literal
			}
			switch {
			case len(ports) == len(hosts) && ports[i] != "":
				h += ":" + ports[i]
			case len(ports) == 1 && ports[0] != "":
				h += ":" + ports[0]
			}
			parts[i] = h
		}
		u.Host = strings.Join(parts, ",")
		delete(kv, "host")
		delete(kv, "port")
	}
	delete(kv, "user")
	delete(kv, "dbname")
	q := url.Values{}
	for k, v := range kv {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

// parseKeywordValue parses a libpq keyword/value connection string.
func parseKeywordValue(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("invalid keyword/value DSN: missing \"=\" after %q", key)
		}
		i++
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("invalid keyword/value DSN: unterminated quoted value for %q", key)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out[key] = val.String()
	}
}

var shared struct {
	mu      sync.Mutex
	started bool
	srv     *Server
	err     error
}

// SharedServer returns one server per process, started on first use; tb.Fatal with the install hint on failure (never Skip).
//
// The server is closed by Main. A test binary that does not use Main still
// does not leak a local server: its watchdog stops it when the process exits.
// Tests must not Close the shared server.
func SharedServer(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		var logw io.Writer = io.Discard
		if testing.Verbose() {
			logw = os.Stderr
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		shared.srv, shared.err = StartServer(ctx, &ServerOpts{Log: logw})
		cancel()
	}
	if shared.err != nil {
		tb.Fatalf("%v", shared.err)
	}
	return shared.srv
}

// closeShared closes the shared server, if one was started.
func closeShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil {
		return nil
	}
	return shared.srv.Close()
}

// Main is for TestMain: `func TestMain(m *testing.M) { isotest.Main(m) }` runs the tests, then closes the shared server, then os.Exit.
//
// A failure to close the shared server is printed and turns a passing run
// into a failing one.
func Main(m *testing.M) {
	code := m.Run()
	if err := closeShared(); err != nil {
		fmt.Fprintf(os.Stderr, "isotest: closing the shared PostgreSQL server: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
