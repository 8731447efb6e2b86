package isotest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoPgBouncer is matched by the error StartPgBouncer returns when the
// pgbouncer binary is not installed.
var ErrNoPgBouncer = errors.New("isotest: pgbouncer is not installed")

// PgBouncerOpts configures StartPgBouncer. A nil *PgBouncerOpts means all
// defaults.
type PgBouncerOpts struct {
	// PoolMode is PgBouncer's pool_mode: "transaction", "session" or
	// "statement". Default: "transaction".
	PoolMode string
	// PoolSize is PgBouncer's default_pool_size (server connections per user
	// and database). Default: 20.
	PoolSize int
}

// PgBouncer is a PgBouncer process in front of a Server, for tests. It
// listens on 127.0.0.1 on a free port and authenticates clients with
// SCRAM-SHA-256 against the server's own password verifiers (auth_query as
// the server's superuser), passing the client's SCRAM keys on to the server,
// so every role of the server logs in through it with its own password.
type PgBouncer struct {
	port    int
	dir     string
	logFile string
	cmd     *exec.Cmd
	in      io.WriteCloser

	once     sync.Once
	closeErr error
}

// findPgBouncer returns the path of the pgbouncer binary (Debian installs it
// in /usr/sbin, which is not on every PATH).
func findPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (searched PATH, /usr/sbin, /usr/local/sbin, /usr/local/bin); to fix: apt-get install pgbouncer", ErrNoPgBouncer)
}

// pgBouncerScript runs pgbouncer ($1 with config $2) until its standard
// input closes: when the test process dies, the kernel closes the pipe and
// pgbouncer is stopped, so it never outlives the tests.
const pgBouncerScript = `"$1" "$2" &
pid=$!
read -r line
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
`

// StartPgBouncer starts PgBouncer in front of srv. Close it when done.
// Without the pgbouncer binary it returns an error matching ErrNoPgBouncer
// that says to run `apt-get install pgbouncer`.
func StartPgBouncer(ctx context.Context, srv *Server, opts *PgBouncerOpts) (*PgBouncer, error) {
	if opts == nil {
		opts = &PgBouncerOpts{}
	}
	mode := opts.PoolMode
	if mode == "" {
		mode = "transaction"
	}
	size := opts.PoolSize
	if size == 0 {
		size = 20
	}
	bin, err := findPgBouncer()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(srv.DSN())
	if err != nil {
		return nil, fmt.Errorf("isotest: parsing the server DSN: %w", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	superUser := u.User.Username()
	superPW, _ := u.User.Password()

	r, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(baseTempDir(r), "bulkhead-pgbouncer-")
	if err != nil {
		return nil, fmt.Errorf("isotest: %w", err)
	}
	fail := func(err error) (*PgBouncer, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(err)
	}
	if err := r.own(dir); err != nil {
		return fail(err)
	}
	listen, err := freePort()
	if err != nil {
		return fail(fmt.Errorf("isotest: finding a free port: %w", err))
	}
	quoteAuth := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	files := map[string]string{
		"userlist.txt": quoteAuth(superUser) + " " + quoteAuth(superPW) + "\n",
		"pgbouncer.ini": strings.Join([]string{
			"[databases]",
			"* = host=" + host + " port=" + port,
			"[pgbouncer]",
			"listen_addr = 127.0.0.1",
			"listen_port = " + strconv.Itoa(listen),
			"unix_socket_dir =",
			"auth_type = scram-sha-256",
			"auth_file = " + filepath.Join(dir, "userlist.txt"),
			"auth_user = " + superUser,
			"pool_mode = " + mode,
			"default_pool_size = " + strconv.Itoa(size),
			"max_client_conn = 1000",
			"ignore_startup_parameters = extra_float_digits",
			"logfile = " + filepath.Join(dir, "pgbouncer.log"),
			"pidfile = " + filepath.Join(dir, "pgbouncer.pid"),
			"server_login_retry = 1",
			"",
		}, "\n"),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fail(err)
		}
		if err := r.own(p); err != nil {
			return fail(err)
		}
	}
	b := &PgBouncer{port: listen, dir: dir, logFile: filepath.Join(dir, "pgbouncer.log")}
	// Not CommandContext: the process must outlive the start context.
	b.cmd = exec.Command("/bin/sh", "-c", pgBouncerScript, "bulkhead-pgbouncer", bin, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.Dir = dir
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cred}
	if b.in, err = b.cmd.StdinPipe(); err != nil {
		return fail(err)
	}
	if err := b.cmd.Start(); err != nil {
		return fail(fmt.Errorf("isotest: starting pgbouncer: %w", err))
	}
	// Wait until it accepts connections.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return b, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logTail := readLogFrom(b.logFile, 0)
			_ = b.Close()
			return nil, fmt.Errorf("isotest: pgbouncer did not start listening on %s: %v\npgbouncer log (tail):\n%s", b.addr(), err, tail([]byte(logTail), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *PgBouncer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Port returns the port PgBouncer listens on (on 127.0.0.1).
func (b *PgBouncer) Port() int { return b.port }

// DSN rewrites dsn, a postgres:// URL to the server behind b (such as a
// Database's GatewayDSN), to go through b instead.
func (b *PgBouncer) DSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic("isotest: PgBouncer.DSN: unparsable DSN: " + err.Error())
	}
	u.Host = b.addr()
	return u.String()
}

// Log returns PgBouncer's log so far, for failure messages.
func (b *PgBouncer) Log() string { return readLogFrom(b.logFile, 0) }

// Close stops PgBouncer and removes its files. It is idempotent.
func (b *PgBouncer) Close() error {
	b.once.Do(func() {
		_, _ = io.WriteString(b.in, "stop\n")
		_ = b.in.Close()
		done := make(chan error, 1)
		go func() { done <- b.cmd.Wait() }()
		select {
		case b.closeErr = <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			b.closeErr = <-done
		}
		if err := os.RemoveAll(b.dir); err != nil && b.closeErr == nil {
			b.closeErr = err
		}
	})
	return b.closeErr
}

// NewPgBouncer starts PgBouncer in front of the shared server and stops it
// when the test ends. A missing pgbouncer binary fails the test (it is
// never skipped) with the install command.
func NewPgBouncer(tb testing.TB, opts *PgBouncerOpts) *PgBouncer {
	tb.Helper()
	srv := SharedServer(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := StartPgBouncer(ctx, srv, opts)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("isotest: stopping pgbouncer: %v", err)
		}
	})
	return b
}
