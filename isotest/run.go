package isotest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Target is what the harness attacks.
type Target struct {
	// Router hands out the tenants' connections. Either Router or Scope is
	// required; Scope wins when both are set.
	Router *router.Router
	// Scope, when set, is used instead of RouterScope(Router): an application
	// that wraps the router attacks its own wrapper this way.
	Scope Scope
	// Provisioner creates and purges the throwaway tenants, and looks up
	// Attacker and Victim. Required.
	Provisioner *provision.Provisioner
	// Admin is a pool on the admin (provisioning) DSN, the role the
	// Provisioner runs as. The harness plants its canary table in each tenant
	// schema as the tenant owner role through it, and reads the hardening
	// state. Required.
	Admin *pgxpool.Pool
	// Attacker and Victim name existing tenants (for example tenants that
	// carry the application's own schema) to attack with and to attack.
	// Default: two throwaway tenants, created and purged by the run. The
	// harness adds, and removes afterwards, a canary table and sequence in
	// their schemas; it never touches their other objects.
	Attacker, Victim tenancy.ID
}

// RunOpts selects attacks. A nil *RunOpts runs the whole catalogue.
type RunOpts struct {
	// Classes limits the run to these classes. Default: all.
	Classes []Class
	// IDs limits the run to these attack IDs. Default: all.
	IDs []string
	// AttackTimeout bounds each attack. Default: 30s.
	AttackTimeout time.Duration
}

func (o *RunOpts) withDefaults() *RunOpts {
	out := RunOpts{}
	if o != nil {
		out = *o
	}
	if out.AttackTimeout == 0 {
		out.AttackTimeout = 30 * time.Second
	}
	return &out
}

func (o *RunOpts) selected(a *Attack) bool {
	if len(o.Classes) > 0 && !slices.Contains(o.Classes, a.Class) {
		return false
	}
	if len(o.IDs) > 0 && !slices.Contains(o.IDs, a.ID) {
		return false
	}
	return true
}

// ErrTarget is matched by the errors Audit and Run return for an unusable
// Target or RunOpts.
var ErrTarget = errors.New("isotest: invalid target")

func (t *Target) scope() (Scope, error) {
	switch {
	case t == nil:
		return nil, fmt.Errorf("%w: Target is nil", ErrTarget)
	case t.Provisioner == nil:
		return nil, fmt.Errorf("%w: Target.Provisioner is required", ErrTarget)
	case t.Admin == nil:
		return nil, fmt.Errorf("%w: Target.Admin is required", ErrTarget)
	case (t.Attacker == "") != (t.Victim == ""):
		return nil, fmt.Errorf("%w: set both Target.Attacker and Target.Victim, or neither", ErrTarget)
	case t.Attacker != "" && t.Attacker == t.Victim:
		return nil, fmt.Errorf("%w: Target.Attacker and Target.Victim are the same tenant %q", ErrTarget, t.Attacker)
	case t.Scope != nil:
		return t.Scope, nil
	case t.Router != nil:
		return RouterScope(t.Router), nil
	}
	return nil, fmt.Errorf("%w: Target.Router or Target.Scope is required", ErrTarget)
}

// newEnv validates t and opts and returns the environment (not yet set up).
func newEnv(t *Target, opts *RunOpts) (*env, error) {
	s, err := t.scope()
	if err != nil {
		return nil, err
	}
	mode := s.Mode()
	if !slices.Contains(Modes(), mode) {
		return nil, fmt.Errorf("%w: the catalogue has no expectations for mode %q (known: %s)", ErrTarget, mode, strings.Join(Modes(), ", "))
	}
	for _, id := range opts.IDs {
		if !slices.ContainsFunc(catalogue, func(a *Attack) bool { return a.ID == id }) {
			return nil, fmt.Errorf("%w: RunOpts.IDs: unknown attack %q", ErrTarget, id)
		}
	}
	for _, c := range opts.Classes {
		if !slices.Contains(Classes(), c) {
			return nil, fmt.Errorf("%w: RunOpts.Classes: unknown class %q", ErrTarget, c)
		}
	}
	return &env{scope: s, mode: mode, prov: t.Provisioner, admin: t.Admin, owner: t.Provisioner.Config().Naming.OwnerRole()}, nil
}

// Audit runs the selected attacks against target and returns the report. It
// returns an error only when the run could not be carried out (an invalid
// target, provisioning failed, cleanup failed); leaks are in the report (see
// Report.Failed). Everything the run creates is removed before Audit returns,
// also when ctx is cancelled.
func Audit(ctx context.Context, target *Target, opts *RunOpts) (rep *Report, err error) {
	opts = opts.withDefaults()
	e, err := newEnv(target, opts)
	if err != nil {
		return nil, err
	}
	rep = e.newReport(ctx, target)
	defer func() {
		if cerr := e.cleanup(ctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("isotest: cleaning up: %w", cerr))
		}
	}()
	if err := e.setup(ctx, target); err != nil {
		return nil, err
	}
	for _, a := range Catalogue() {
		if !opts.selected(a) {
			continue
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("isotest: audit interrupted before %s: %w", a.ID, ctx.Err())
		}
		rep.add(e.execute(ctx, a, opts.AttackTimeout))
	}
	rep.finish()
	return rep, nil
}

// execute runs one attack and judges it.
func (e *env) execute(ctx context.Context, a *Attack, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	obs := func() (obs observation) {
		defer func() {
			if p := recover(); p != nil {
				obs = failed(fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			}
		}()
		return a.run(ctx, e)
	}()
	exp := a.Expect[e.mode]
	res := Result{
		ID: a.ID, Class: a.Class, Severity: a.Severity, Title: a.Title, Description: a.Description,
		Action: a.Action, Mode: e.mode, Expected: exp, Observed: obs.Outcome, Evidence: obs.Evidence,
		Verdict: judge(obs, exp), Duration: time.Since(start),
	}
	if obs.Err != nil {
		res.Evidence = "harness error: " + obs.Err.Error()
	}
	if res.Verdict == Residual {
		res.ResidualRisk = a.Residual
	}
	return res
}

// testingT is the part of *testing.T that Run uses, so Run can be tested with
// a fake.
type testingT interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Run(name string, fn func(testingT)) bool
}

type tAdapter struct{ *testing.T }

func (t tAdapter) Run(name string, fn func(testingT)) bool {
	return t.T.Run(name, func(t *testing.T) { fn(tAdapter{t}) })
}

// Run runs the selected attacks against target as subtests of t, one per
// attack, named by attack ID. A subtest fails when its attack achieved more
// than the mode allows, or when the harness could not carry it out; a known
// residual of the mode is logged, not failed. Everything the run creates is
// removed when t ends. Run returns the report.
func Run(t *testing.T, target *Target, opts *RunOpts) *Report {
	t.Helper()
	return run(tAdapter{t}, target, opts)
}

func run(t testingT, target *Target, opts *RunOpts) *Report {
	t.Helper()
	opts = opts.withDefaults()
	e, err := newEnv(target, opts)
	if err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(func() {
		if err := e.cleanup(ctx); err != nil {
			t.Errorf("isotest: cleaning up: %v", err)
		}
		cancel()
	})
	rep := e.newReport(ctx, target)
	if err := e.setup(ctx, target); err != nil {
		t.Fatalf("%v", err)
		return nil
	}
	for _, a := range Catalogue() {
		if !opts.selected(a) {
			continue
		}
		t.Run(a.ID, func(t testingT) {
			res := e.execute(ctx, a, opts.AttackTimeout)
			rep.add(res)
			switch res.Verdict {
			case Fail:
				t.Errorf("%s [%s] %s: observed %s, the worst allowed in %s is %s: %s", res.ID, res.Severity, res.Title, res.Observed, res.Mode, res.Expected, res.Evidence)
			case Error:
				t.Errorf("%s %s: %s", res.ID, res.Title, res.Evidence)
			case Residual:
				t.Logf("%s %s: known residual of %s (%s): %s", res.ID, res.Title, res.Mode, res.Observed, res.Evidence)
			default:
				t.Logf("%s %s: %s: %s", res.ID, res.Title, res.Verdict, res.Evidence)
			}
		})
	}
	rep.finish()
	return rep
}

// pgxVersion returns the version of pgx linked into this binary.
func pgxVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || len(bi.Deps) == 0 {
		// Test binaries record no dependency versions.
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/jackc/pgx/v5" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

func goVersion() string { return runtime.Version() }
