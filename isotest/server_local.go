package isotest

// Local PostgreSQL servers started from the installed binaries.
//
// Startup cost. initdb is the slow part (seconds on a small, busy machine), so
// the first server on a machine runs initdb once into a template directory,
// <tmp>/bulkhead-pg-template-<uid>-<key>, where key identifies the binaries.
// <tmp> is /dev/shm when it is a roomy tmpfs (see baseTempDir): on a small VM
// copying the template there takes about 0.1 s against 1 to 2 s on disk.
// Every server, in this process or a later one, copies the template (a few
// hundred milliseconds), starts, and sets a fresh random superuser password.
// Creating the template is serialized between processes with flock on
// <template>.lock, and it is published with an atomic rename, so concurrent
// test binaries never see a half-written template. Template directories are
// left in the temporary directory for later runs (about 40 MB each); deleting
// them is always safe.
//
// Orphans. pg_ctl daemonizes the postmaster, so a server would outlive a test
// process that is killed (SIGKILL, a -timeout panic, os.Exit without Close).
// Each server therefore gets a watchdog: a tiny `sh` process, in its own
// process group (so a terminal's Ctrl-C does not kill it first), that blocks
// reading a pipe whose only writer is the test process. When the test process
// exits for any reason the kernel closes the pipe, `read` returns, and the
// watchdog runs `pg_ctl stop -m immediate` and removes the data directory.
// Close does the same work itself and then tells the watchdog to exit quietly.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// templateFormat changes whenever the template's initdb arguments or layout
// change, so that old templates are not reused.
const templateFormat = "3"

// findBinDir returns the directory holding initdb, pg_ctl and postgres, and
// the places it searched. It searches $BULKHEAD_TEST_PG_BINDIR alone when it
// is set; else PATH, then `pg_config --bindir`, then the distributions'
// versioned directories, highest version first.
func findBinDir() (dir string, searched []string) {
	if d := os.Getenv(envPGBinDir); d != "" {
		searched = append(searched, "$"+envPGBinDir+" ("+d+")")
		if hasServerBinaries(d) {
			return d, searched
		}
		return "", searched
	}

	searched = append(searched, "PATH")
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
			return filepath.Dir(real), searched
		}
		if hasServerBinaries(filepath.Dir(p)) {
			return filepath.Dir(p), searched
		}
	}

	searched = append(searched, "pg_config --bindir")
	if p, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, p, "--bindir").Output()
		cancel()
		if d := strings.TrimSpace(string(out)); err == nil && d != "" && hasServerBinaries(d) {
			return d, searched
		}
	}

	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		searched = append(searched, pattern)
		matches, _ := filepath.Glob(pattern)
		sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
		for _, d := range matches {
			if hasServerBinaries(d) {
				return d, searched
			}
		}
	}
	return "", searched
}

// versionOf extracts the major version from a versioned bin directory such as
// /usr/lib/postgresql/15/bin or /usr/pgsql-15/bin, or returns 0.
func versionOf(binDir string) float64 {
	base := filepath.Base(filepath.Dir(binDir))
	base = strings.TrimPrefix(base, "pgsql-")
	v, err := strconv.ParseFloat(base, 64)
	if err != nil {
		return 0
	}
	return v
}

// hasServerBinaries reports whether dir holds executable initdb, pg_ctl and
// postgres files.
func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// runAs is the OS identity the server binaries run as.
type runAs struct {
	cred     *syscall.Credential // nil: the current user
	uid, gid int
	name     string
}

// serverUser returns the identity to run the binaries as: the current user,
// or the "postgres" OS user when the process is root.
func serverUser() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Geteuid(), gid: os.Getegid(), name: "the current user"}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("isotest: running as root, and initdb refuses to run as root, but there is no \"postgres\" OS user to run it as (%v); "+
			"create one (useradd --system --user-group postgres; installing postgresql-15 creates it) or set %s", err, envTestDSN)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("isotest: OS user postgres has a non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		uid:  uid, gid: gid,
		name: fmt.Sprintf("OS user postgres (uid %d)", uid),
	}, nil
}

// command returns a command for the server binaries, run as r, in dir.
func (r runAs) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// own gives path to r's user, if the process runs the binaries as someone
// else.
func (r runAs) own(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Lchown(path, r.uid, r.gid)
}

// baseTempDir returns the directory for data directories and templates:
// /dev/shm when it is a tmpfs with room to spare (file writes there cost a
// tenth of those on a disk, and a server's files are throwaway), else the usual
// temporary directory, or /tmp when the server user could not reach that.
func baseTempDir(r runAs) string {
	if ramDiskUsable("/dev/shm", r) {
		return "/dev/shm"
	}
	d := os.TempDir()
	if r.cred == nil || searchableByOthers(d) {
		return d
	}
	return "/tmp"
}

// ramDiskUsable reports whether dir is a tmpfs with at least 2 GiB available
// that r's user can reach.
func ramDiskUsable(dir string, r runAs) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	if uint64(st.Type) != tmpfsMagic || uint64(st.Bavail)*uint64(st.Bsize) < 2<<30 {
		return false
	}
	if syscall.Access(dir, 0o2|0o1) != nil { // W_OK|X_OK for this process
		return false
	}
	return r.cred == nil || searchableByOthers(dir)
}

// searchableByOthers reports whether every directory from dir up to the root
// is searchable by any user.
func searchableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// startLocal starts a server from the binaries in binDir and returns its
// superuser DSN and a function that stops it and removes its files.
func startLocal(ctx context.Context, binDir string, logf func(string, ...any)) (dsn string, stop func() error, err error) {
	r, err := serverUser()
	if err != nil {
		return "", nil, err
	}
	base := baseTempDir(r)

	root, err := os.MkdirTemp(base, "bulkhead-pg-")
	if err != nil {
		return "", nil, fmt.Errorf("isotest: %w", err)
	}
	removeRoot := func() { os.RemoveAll(root) }
	if err := os.Chmod(root, 0o700); err != nil {
		removeRoot()
		return "", nil, fmt.Errorf("isotest: %w", err)
	}
	if err := r.own(root); err != nil {
		removeRoot()
		return "", nil, fmt.Errorf("isotest: %w", err)
	}
	dataDir := filepath.Join(root, "data")
	logFile := filepath.Join(dataDir, "postgres.log")
	pgCtl := filepath.Join(binDir, "pg_ctl")
	logf("local server from %s, running as %s, data dir %s", binDir, r.name, dataDir)

	// The watchdog comes first, so that a process killed from here on leaves
	// nothing behind.
	wd, err := startWatchdog(pgCtl, dataDir, root, r)
	if err != nil {
		removeRoot()
		return "", nil, err
	}
	removeRoot = func() {
		os.RemoveAll(root)
		wd.dismiss()
	}

	// The password the data directory starts with, and the one it ends with.
	password := randomHex(24)
	initialPassword := password
	tmplDir, tmplPassword, terr := ensureTemplate(ctx, binDir, base, r, logf)
	switch {
	case terr == nil:
		if err := copyTree(tmplDir, dataDir, r); err != nil {
			removeRoot()
			return "", nil, fmt.Errorf("isotest: copying the template data dir: %w", err)
		}
		initialPassword = tmplPassword
	case errors.Is(terr, errInitdb):
		removeRoot()
		return "", nil, terr
	default:
		logf("no template data dir (%v); running initdb directly", terr)
		if err := initdb(ctx, binDir, root, dataDir, password, r); err != nil {
			removeRoot()
			return "", nil, err
		}
	}

	stop = func() error {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		if _, statErr := os.Stat(filepath.Join(dataDir, "postmaster.pid")); statErr == nil {
			out, err := r.command(sctx, root, pgCtl, "stop", "-D", dataDir, "-m", "immediate", "-w", "-s").CombinedOutput()
			if err != nil {
				errs = append(errs, fmt.Errorf("isotest: pg_ctl stop: %w: %s", err, bytes.TrimSpace(out)))
			}
		}
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, fmt.Errorf("isotest: removing %s: %w", root, err))
		}
		wd.dismiss()
		return errors.Join(errs...)
	}

	port, err := startPostgres(ctx, pgCtl, root, dataDir, logFile, r)
	if err != nil {
		stop()
		return "", nil, err
	}
	logf("listening on 127.0.0.1:%d", port)

	dsnWith := func(pw string) string {
		u := url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword("postgres", pw),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}
		return u.String()
	}
	if initialPassword != password {
		if err := setPassword(ctx, dsnWith(initialPassword), password); err != nil {
			stop()
			return "", nil, fmt.Errorf("isotest: setting the superuser password: %w", err)
		}
	}
	return dsnWith(password), stop, nil
}

// errInitdb marks an initdb failure, which a retry without the template would
// only repeat.
var errInitdb = errors.New("initdb failed")

// initdb creates a cluster in dataDir (which must not exist or be empty) with
// superuser "postgres" and the given password, scram-sha-256 for every
// connection.
func initdb(ctx context.Context, binDir, workDir, dataDir, password string, r runAs) error {
	pwFile := filepath.Join(workDir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("isotest: %w", err)
	}
	defer os.Remove(pwFile)
	if err := r.own(pwFile); err != nil {
		return fmt.Errorf("isotest: %w", err)
	}
	out, err := r.command(ctx, workDir, filepath.Join(binDir, "initdb"),
		"-D", dataDir,
		"-A", "scram-sha-256",
		"--pwfile="+pwFile,
		"-U", "postgres",
		"-E", "UTF8",
		"--locale=C",
		"--no-sync", // the cluster is throwaway: skip the fsyncs that dominate initdb's time
		// 1 MB WAL segments instead of 16 MB: a fresh cluster then has 23 MB
		// of files instead of 39 MB, which makes copying the template faster.
		"--wal-segsize=1",
		"--no-instructions",
	).CombinedOutput()
	if err != nil {
		return fmt.Errorf("isotest: %w: %s %s: %v\n%s", errInitdb, filepath.Join(binDir, "initdb"), dataDir, err, tail(out, 30))
	}
	return nil
}

// ensureTemplate returns a template data directory for the binaries in
// binDir, and its superuser password, creating it on first use.
func ensureTemplate(ctx context.Context, binDir, base string, r runAs, logf func(string, ...any)) (dataDir, password string, err error) {
	key, err := templateKey(binDir)
	if err != nil {
		return "", "", err
	}
	final := filepath.Join(base, fmt.Sprintf("bulkhead-pg-template-%d-%s", r.uid, key))
	if pw, ok := readTemplate(final, r); ok {
		return filepath.Join(final, "data"), pw, nil
	}

	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if pw, ok := readTemplate(final, r); ok {
		return filepath.Join(final, "data"), pw, nil
	}
	if _, err := os.Lstat(final); err == nil {
		return "", "", fmt.Errorf("%s exists but is not a usable template (remove it)", final)
	}

	start := time.Now()
	tmp, err := os.MkdirTemp(base, "bulkhead-pg-template-tmp-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o700); err != nil {
		return "", "", err
	}
	if err := r.own(tmp); err != nil {
		return "", "", err
	}
	password = randomHex(24)
	if err := initdb(ctx, binDir, tmp, filepath.Join(tmp, "data"), password, r); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "password"), []byte(password), 0o600); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", "", err
	}
	logf("created the template data dir %s in %s", final, time.Since(start).Round(time.Millisecond))
	return filepath.Join(final, "data"), password, nil
}

// templateKey identifies the binaries in binDir (path, size and modification
// time of postgres and initdb) and the template format.
func templateKey(binDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "format=%s\n", templateFormat)
	for _, name := range []string{"initdb", "postgres"} {
		p := filepath.Join(binDir, name)
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(real)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", real, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// readTemplate returns the password of the template at dir if dir is a
// complete template owned by r's user and private to it.
func readTemplate(dir string, r runAs) (string, bool) {
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		return "", false
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != r.uid {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		return "", false
	}
	pw, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil || len(pw) == 0 {
		return "", false
	}
	return string(pw), true
}

// lockFile takes an exclusive flock on path, waiting until ctx is done. The
// kernel releases the lock if the process dies.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// copyTree copies the directory src to dst (which must not exist), keeping
// permissions and giving everything to r's user.
func copyTree(src, dst string, r runAs) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected file type %v: %s", d.Type(), path)
		}
		return r.own(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range on Linux
		out.Close()
		return err
	}
	if err := out.Chmod(perm); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// watchdog is the process that stops the server if this process dies.
type watchdog struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

// watchdogScript stops the server and removes its files unless it reads
// "done". $1 is pg_ctl, $2 the data directory, $3 the directory to remove.
const watchdogScript = `read -r line
[ "$line" = done ] && exit 0
"$1" stop -D "$2" -m immediate -w -s >/dev/null 2>&1
rm -rf "$3"
`

// startWatchdog starts the watchdog for the server in dataDir. It runs as r's
// user (pg_ctl refuses root), which owns root.
func startWatchdog(pgCtl, dataDir, root string, r runAs) (*watchdog, error) {
	// Not CommandContext: the watchdog must outlive the start context.
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "bulkhead-pg-watchdog", pgCtl, dataDir, root)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cred}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("isotest: watchdog: %w", err)
	}
	// Stdout and stderr stay unset (/dev/null): the watchdog must not hold
	// the test process's output pipes open, or `go test` would wait for it.
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("isotest: starting the watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, in: in}, nil
}

// dismiss tells the watchdog that the server is already stopped and waits
// for it to exit.
func (w *watchdog) dismiss() {
	io.WriteString(w.in, "done\n")
	w.in.Close()
	w.cmd.Wait()
}

// startPostgres starts the server in dataDir on a free port, retrying with
// another port when the chosen one was taken in the meantime.
func startPostgres(ctx context.Context, pgCtl, root, dataDir, logFile string, r runAs) (port int, err error) {
	const attempts = 5
	for attempt := 1; ; attempt++ {
		port, err = freePort()
		if err != nil {
			return 0, fmt.Errorf("isotest: finding a free port: %w", err)
		}
		var logStart int64
		if st, err := os.Stat(logFile); err == nil {
			logStart = st.Size()
		}
		opts := strings.Join([]string{
			"-c listen_addresses=127.0.0.1",
			"-p " + strconv.Itoa(port),
			"-c unix_socket_directories=" + shellQuote(root),
			"-c fsync=off",
			"-c synchronous_commit=off",
			"-c full_page_writes=off",
			"-c max_connections=400",
			"-c shared_buffers=128MB",
		}, " ")
		out, runErr := r.command(ctx, root, pgCtl, "start", "-w", "-t", "120", "-s",
			"-D", dataDir, "-l", logFile, "-o", opts).CombinedOutput()
		if runErr == nil {
			return port, nil
		}
		logTail := readLogFrom(logFile, logStart)
		if attempt < attempts && ctx.Err() == nil &&
			(strings.Contains(logTail, "could not bind") || strings.Contains(logTail, "could not create any TCP/IP sockets")) {
			continue
		}
		return 0, fmt.Errorf("isotest: pg_ctl start (port %d): %v: %s\nserver log %s (tail):\n%s",
			port, runErr, bytes.TrimSpace(out), logFile, tail([]byte(logTail), 30))
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// shellQuote quotes s for the shell that pg_ctl starts the server with.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readLogFrom returns the log file's content from offset on (at most the last
// 64 KiB of it).
func readLogFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size()-offset > 64<<10 {
		offset = st.Size() - 64<<10
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setPassword connects with dsn and sets the superuser's password.
func setPassword(ctx context.Context, dsn, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// password is hex, so it needs no quoting beyond the literal's quotes.
	_, err = conn.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+password+"'").ReadAll()
	return err
}
