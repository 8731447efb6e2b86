package isotest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// weakScope is a deliberately broken router of the kind the harness must
// catch: a plain pgxpool (pgx's statement cache on, no per-tenant cap, no
// statement timeout) on a gateway that was made INHERIT, so it "switches" a
// connection by setting search_path only and never resets it on release.
type weakScope struct {
	pool *pgxpool.Pool
	prov *provision.Provisioner

	mu      sync.Mutex
	tenants map[tenancy.ID]*tenancy.Tenant
}

func (s *weakScope) Mode() string { return isotest.ModeSessionRole }

func (s *weakScope) Do(ctx context.Context, id tenancy.ID, fn func(isotest.DB) error) error {
	if err := id.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	t, ok := s.tenants[id]
	s.mu.Unlock()
	if !ok {
		var err error
		if t, err = s.prov.Get(ctx, id); err != nil {
			return err
		}
		s.mu.Lock()
		s.tenants[id] = t
		s.mu.Unlock()
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "SET search_path = "+pgx.Identifier{t.Schema}.Sanitize()+", public"); err != nil {
		return err
	}
	return fn(c)
}

// weaken undoes bulkhead's hardening on d, as a careless setup would.
func weaken(t *testing.T, d *isotest.Deployment, a, b *tenancy.Tenant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	for _, s := range []string{
		"ALTER ROLE " + q(d.DB.GatewayRole) + " INHERIT",
		"GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC",
		"GRANT TEMPORARY ON DATABASE " + q(d.DB.Name) + " TO PUBLIC",
		"GRANT " + q(b.Role) + " TO " + q(a.Role),
	} {
		_, err := conn.Exec(ctx, s)
		require.NoError(t, err, s)
	}
}

// weakTarget builds the weak fixture: a deployment, two tenants of the
// test's own, the hardening undone and the weak scope.
func weakTarget(t *testing.T) (*isotest.Target, *isotest.Deployment) {
	d := isotest.NewDeployment(t, nil)
	a, b := d.NewTenant(t, nil), d.NewTenant(t, nil)
	weaken(t, d, a, b)
	pool, err := pgxpool.New(context.Background(), d.DB.GatewayDSN)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &isotest.Target{
		Scope:       &weakScope{pool: pool, prov: d.Provisioner, tenants: map[tenancy.ID]*tenancy.Tenant{}},
		Provisioner: d.Provisioner, Admin: d.Admin, Attacker: a.ID, Victim: b.ID,
	}, d
}

// mustLeak are attacks the weak fixture must lose, one per weakness.
var mustLeak = []string{
	"ROLE-003", // RESET ROLE lands on a gateway that can read everything
	"XS-001",   // INHERIT gateway reads the victim's table
	"XS-002",   // ... and writes it
	"HYG-001",  // no reset: custom settings survive
	"HYG-006",  // no reset: prepared statements survive
	"HYG-010",  // pgx statement cache kept and replaced
	"PATH-001", // PUBLIC may CREATE in public: trojan functions
	"PATH-002", // ... and operators
	"PATH-003", // TEMP for PUBLIC: pg_temp shadowing
	"PRIV-001", // the gateway is INHERIT
	"PRIV-007", // a tenant role granted to another
	"DOS-001",  // no statement timeout
	"DOS-003",  // no per-tenant checkout cap
}

// TestWeakFixtureAudit: the library API reports the weak fixture's leaks.
func TestWeakFixtureAudit(t *testing.T) {
	t.Parallel()
	target, d := weakTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := isotest.Audit(ctx, target, nil)
	require.NoError(t, err)
	if os.Getenv("ISOTEST_PRINT") != "" {
		_ = rep.WriteText(os.Stdout)
	}
	require.True(t, rep.Failed(), "the weak fixture must fail the audit")
	leaked := map[string]bool{}
	for _, r := range rep.Leaks() {
		leaked[r.ID] = true
	}
	for _, id := range mustLeak {
		require.True(t, leaked[id], "%s must be reported as a leak against the weak fixture", id)
	}
	for _, r := range rep.Results {
		require.NotEqual(t, isotest.Error, r.Verdict, "%s could not run against the weak fixture: %s", r.ID, r.Evidence)
	}
	// The tenants were the test's own: the harness removed its canary
	// objects and large objects from them and left the tenants in place.
	tenants, tables, los := leftovers(t, d)
	require.Equal(t, [3]int{0, 0, 0}, [3]int{tenants, tables, los})
	for _, id := range []tenancy.ID{target.Attacker, target.Victim} {
		tn, err := d.Provisioner.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusActive, tn.Status)
	}
}

// TestWeakFixtureRunFails: the go test API fails the subtests of the
// attacks that leak (observed through a fake testing.T).
func TestWeakFixtureRunFails(t *testing.T) {
	t.Parallel()
	target, _ := weakTarget(t)
	rep, failures := isotest.RunFake(t, target, &isotest.RunOpts{IDs: []string{"XS-001", "HYG-010", "FILE-001"}})
	require.NotNil(t, rep)
	require.Len(t, failures, 2, "XS-001 and HYG-010 fail, FILE-001 passes: %v", failures)
	require.Contains(t, failures[0], "XS-001")
	require.Contains(t, failures[1], "HYG-010")
	require.Equal(t, 1, rep.Summary.Pass, fmt.Sprint(rep.Results))
}
