// Package isodocker lets isotest start its PostgreSQL server in Docker.
//
// Blank-import it in a test binary to enable the Docker fallback:
//
//	import _ "github.com/bulkhead-go/bulkhead/isotest/isodocker"
//
// Its init function registers an isotest.Provider that runs the postgres:15
// image with github.com/ory/dockertest/v3. isotest.StartServer uses it only
// when $BULKHEAD_TEST_DSN is unset, no local PostgreSQL binaries are installed,
// and a Docker engine answers a ping within about a second. The engine is
// found as the docker CLI would find it: $DOCKER_HOST (with $DOCKER_CERT_PATH
// for TLS), else the default socket.
//
// The container publishes 5432 on a random host port, requires scram-sha-256
// passwords with a random superuser password, and runs with fsync off. It is
// removed when the server is closed. A container whose test process was killed
// before closing it stops itself after an hour (it runs under `timeout`) and
// is then removed by Docker (AutoRemove).
//
// The package lives apart from isotest so that importers of isotest do not
// inherit Docker client dependencies.
package isodocker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"

	"github.com/bulkhead-go/bulkhead/isotest"
)

// image and tag name the PostgreSQL image the provider runs.
const (
	image = "postgres"
	tag   = "15"
)

// maxLifetime bounds how long a container lives, so that a killed test process
// leaves nothing running for long.
const maxLifetime = time.Hour

// pingTimeout bounds Available.
const pingTimeout = time.Second

func init() { isotest.RegisterProvider(provider{}) }

// provider is the isotest.Provider backed by Docker.
type provider struct{}

// Name names the provider in isotest's logs and errors.
func (provider) Name() string { return "docker (" + image + ":" + tag + ")" }

// Available reports whether a Docker engine answers a ping within about a
// second.
func (provider) Available(ctx context.Context) bool {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return pool.Client.PingWithContext(ctx) == nil
}

// Start runs a postgres container and waits until it accepts a password
// login over TCP.
func (provider) Start(ctx context.Context) (dsn string, stop func() error, err error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return "", nil, fmt.Errorf("connecting to Docker: %w", err)
	}
	pool.MaxWait = 2 * time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		if d := time.Until(deadline); d < pool.MaxWait {
			pool.MaxWait = d
		}
	}

	password, err := randomHex(24)
	if err != nil {
		return "", nil, err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: image,
		Tag:        tag,
		Env: []string{
			"POSTGRES_USER=postgres",
			"POSTGRES_PASSWORD=" + password,
			"POSTGRES_DB=postgres",
			"POSTGRES_HOST_AUTH_METHOD=scram-sha-256",
			"POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --auth-local=scram-sha-256",
		},
		// timeout(1) stops the server (fast shutdown) after maxLifetime even
		// if nobody calls stop; AutoRemove then deletes the container.
		Entrypoint: []string{"timeout", "-s", "INT", fmt.Sprint(int(maxLifetime.Seconds())), "docker-entrypoint.sh"},
		Cmd: []string{"postgres",
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=400",
			"-c", "shared_buffers=128MB",
		},
		Labels: map[string]string{"dev.bulkhead.isotest": "1"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
		hc.ShmSize = 256 << 20
	})
	if err != nil {
		return "", nil, fmt.Errorf("running %s:%s: %w", image, tag, err)
	}
	stop = func() error { return pool.Purge(res) }

	hostPort := res.GetHostPort("5432/tcp")
	if hostPort == "" {
		stop()
		return "", nil, fmt.Errorf("container %s publishes no port for 5432/tcp", res.Container.ID)
	}
	dsn = fmt.Sprintf("postgres://postgres:%s@%s/postgres?sslmode=disable", password, hostPort)
	// The image's entrypoint first runs a socket-only server for its init
	// scripts, so a TCP login succeeds only once the final server is up.
	err = pool.Retry(func() error {
		if ctx.Err() != nil {
			return nil // checked below
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(cctx, dsn)
		if err != nil {
			return err
		}
		return conn.Close(cctx)
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("waiting for PostgreSQL in container %s: %w", res.Container.ID, err)
	}
	return dsn, stop, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
