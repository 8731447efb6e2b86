package isotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Standby is a streaming-replication standby of a local Server, for
// failover tests: start it with StartStandby, promote it with Promote.
type Standby struct {
	*Server
	pgCtl   string
	dataDir string
	r       runAs
}

// StartStandby starts a hot standby of s (a server started from local
// binaries, on this machine) on another port: pg_basebackup from s, then
// streaming replication. Close it when done; it is removed like any local
// server.
func (s *Server) StartStandby(ctx context.Context) (*Standby, error) {
	binDir, _ := findBinDir()
	if binDir == "" {
		return nil, &NoServerError{Hint: installHint()}
	}
	u, err := url.Parse(s.DSN())
	if err != nil {
		return nil, err
	}
	pw, _ := u.User.Password()
	r, err := serverUser()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(baseTempDir(r), "bulkhead-pg-standby-")
	if err != nil {
		return nil, fmt.Errorf("isotest: %w", err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	if err := r.own(root); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	dataDir := filepath.Join(root, "data")
	pgCtl := filepath.Join(binDir, "pg_ctl")
	wd, err := startWatchdog(pgCtl, dataDir, root, r)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	cleanup := func() {
		os.RemoveAll(root)
		wd.dismiss()
	}

	cmd := r.command(ctx, root, filepath.Join(binDir, "pg_basebackup"),
		"-D", dataDir, "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(),
		"-X", "stream", "-R", "--checkpoint=fast", "--no-sync")
	cmd.Env = append(cmd.Env, "PGPASSWORD="+pw)
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("isotest: pg_basebackup: %v\n%s", err, bytes.TrimSpace(out))
	}
	// The primary's postmaster.pid and log are not copied; the standby gets
	// its own port and log.
	logFile := filepath.Join(dataDir, "postgres.log")
	port, err := startPostgres(ctx, pgCtl, root, dataDir, logFile, r)
	if err != nil {
		cleanup()
		return nil, err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		if _, statErr := os.Stat(filepath.Join(dataDir, "postmaster.pid")); statErr == nil {
			if out, err := r.command(sctx, root, pgCtl, "stop", "-D", dataDir, "-m", "immediate", "-w", "-s").CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("isotest: pg_ctl stop: %w: %s", err, bytes.TrimSpace(out)))
			}
		}
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, err)
		}
		wd.dismiss()
		return errors.Join(errs...)
	}
	su := *u
	su.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return &Standby{Server: &Server{dsn: su.String(), stop: stop}, pgCtl: pgCtl, dataDir: dataDir, r: r}, nil
}

// Promote makes the standby a primary (pg_ctl promote) and waits until it
// accepts writes.
func (sb *Standby) Promote(ctx context.Context) error {
	out, err := sb.r.command(ctx, filepath.Dir(sb.dataDir), sb.pgCtl, "promote", "-D", sb.dataDir, "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("isotest: pg_ctl promote: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
