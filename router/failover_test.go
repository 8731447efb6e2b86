package router_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// TestFailover: a primary and a streaming standby on loopback; routers in
// every mode use a multi-host DSN with target_session_attrs=read-write. The
// primary dies and the standby is promoted: every router serves again within
// 30 seconds without a restart, work caught by the failure fails with
// tenancy.ErrConnLost (or a timeout), and no request ever runs as another
// tenant.
func TestFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary, err := isotest.StartServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = primary.Close() })
	creds := testCredentials(t)
	d, err := isotest.StartDeployment(ctx, primary, &isotest.DeploymentOpts{Migrations: testMigrations, Credentials: creds})
	require.NoError(t, err)
	t.Cleanup(func() { d.Router.Close(); d.Admin.Close() })
	var tenants []*tenancy.Tenant
	for i := range 4 {
		tn, err := d.Provisioner.Create(ctx, tenancy.ID(fmt.Sprintf("fo-%d", i)), nil)
		require.NoError(t, err)
		tenants = append(tenants, tn)
		plant(t, d.Router, tn.ID)
	}

	standby, err := primary.StartStandby(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = standby.Close() })

	// One DSN naming both servers; only the read-write one is used.
	gw, err := url.Parse(d.DB.GatewayDSN)
	require.NoError(t, err)
	sb, err := url.Parse(standby.DSN())
	require.NoError(t, err)
	gw.Host = gw.Host + "," + sb.Host
	q := gw.Query()
	q.Set("target_session_attrs", "read-write")
	q.Set("connect_timeout", "2")
	gw.RawQuery = q.Encode()

	modes := []router.Mode{router.SessionRole, router.TxLocal, router.TenantLogin}
	routers := map[router.Mode]*router.Router{}
	for _, m := range modes {
		r, err := router.New(ctx, gw.String(), &router.Config{Mode: m, Credentials: creds, StatusTTL: 100 * time.Millisecond, AcquireTimeout: 3 * time.Second})
		require.NoError(t, err)
		t.Cleanup(r.Close)
		routers[m] = r
	}
	check := func(r *router.Router, tn *tenancy.Tenant) error {
		return r.InTx(ctx, tn.ID, func(tx pgx.Tx) error {
			var secret string
			if err := tx.QueryRow(ctx, "SELECT value FROM secrets WHERE id = 1").Scan(&secret); err != nil {
				return err
			}
			if secret != string(tn.ID) {
				return fmt.Errorf("WRONG TENANT: %s read %s's secret", tn.ID, secret)
			}
			_, err := tx.Exec(ctx, "INSERT INTO items (owner) VALUES ($1)", string(tn.ID))
			return err
		})
	}
	for _, m := range modes {
		for _, tn := range tenants {
			require.NoError(t, check(routers[m], tn), "before failover, mode %s", m)
		}
	}

	// Workers run throughout; the primary dies under them.
	var wrong, lost, timeouts, other, ok atomic.Int64
	var otherMu sync.Mutex
	var otherErrs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range modes {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := check(routers[m], tenants[rand.IntN(len(tenants))])
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, tenancy.ErrConnLost):
						lost.Add(1)
					case errors.Is(err, context.DeadlineExceeded), errors.Is(err, tenancy.ErrBusy):
						timeouts.Add(1)
					case err != nil && len(err.Error()) >= 12 && err.Error()[:12] == "WRONG TENANT":
						wrong.Add(1)
					default:
						other.Add(1)
						otherMu.Lock()
						otherErrs = append(otherErrs, fmt.Sprintf("%s: %v", m, err))
						otherMu.Unlock()
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond)

	require.NoError(t, primary.Close()) // pg_ctl stop -m immediate: a crash
	killed := time.Now()
	require.NoError(t, standby.Promote(ctx))
	promoted := time.Since(killed)

	recovered := map[router.Mode]time.Duration{}
	for _, m := range modes {
		for {
			if check(routers[m], tenants[0]) == nil {
				recovered[m] = time.Since(killed)
				break
			}
			require.Less(t, time.Since(killed), 30*time.Second, "mode %s did not recover within 30s", m)
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("promoted after %s; recovered after %v; ok %d, conn lost %d, timeouts %d, other %d, wrong tenant %d",
		promoted.Round(time.Millisecond), recovered, ok.Load(), lost.Load(), timeouts.Load(), other.Load(), wrong.Load())
	require.Zero(t, wrong.Load(), "a request ran as another tenant")
	require.Empty(t, otherErrs, "errors that are neither ErrConnLost nor timeouts")
	require.Positive(t, lost.Load()+timeouts.Load(), "the failure was noticed")

	// After recovery, every tenant in every mode, on fresh connections only.
	for _, m := range modes {
		for _, tn := range tenants {
			require.NoError(t, check(routers[m], tn), "after failover, mode %s", m)
		}
	}
}
