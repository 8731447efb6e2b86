package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/examples/licensing/console"
	"github.com/bulkhead-go/bulkhead/examples/licensing/internal/server"
	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestMain(m *testing.M) { isotest.Main(m) }

// TestEmbeddedBuild checks that the binary carries a built console whose
// index.html loads the assets that are embedded with it.
func TestEmbeddedBuild(t *testing.T) {
	t.Parallel()
	fsys := console.FS()
	index, err := fs.ReadFile(fsys, "index.html")
	require.NoError(t, err)
	for _, asset := range []string{"assets/console.js", "assets/index.css"} {
		require.Contains(t, string(index), "/admin/"+asset)
		_, err := fs.Stat(fsys, asset)
		require.NoError(t, err)
	}
}

// chromiumPath is Debian's chromium, or $CHROMIUM.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestConsoleInChromium drives the console in headless Chromium
// (playwright-core, e2e/console.e2e.mjs) against the real server on a real
// PostgreSQL: sign-in, the wizard (keyboard only), the tenant table and its
// lifecycle actions, the security and performance views, axe-core on each
// view, the latter first without an isotest report, then with the report of
// an isotest.Audit run on the same deployment. Screenshots go to
// docs/console/ at the repository root.
//
// It needs node, the console's node_modules (npm ci) and chromium; without
// them it fails with what to install, it does not skip.
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "the console's browser test needs Node.js: apt-get install nodejs npm (Node 18+), then `make console-verify` (npm ci && npm run build in examples/licensing/console)")
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		// A fresh clone: install the locked packages (the npm registry only;
		// no browser is downloaded, playwright-core ships none).
		npm, err := exec.LookPath("npm")
		require.NoError(t, err, "the console's browser test needs npm to install its packages: apt-get install npm")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund").CombinedOutput()
		require.NoError(t, err, "npm ci in examples/licensing/console failed:\n%s", out)
	}
	_, err = os.Stat(chromiumPath())
	require.NoError(t, err, "the console's browser test needs Chromium at /usr/bin/chromium (apt-get install chromium) or $CHROMIUM; no browser is downloaded")

	ctx := context.Background()
	m := server.NewMetrics()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations(), Router: router.Config{Tracer: m}})
	keys, err := server.NewKeys([]byte("console-test-secret-console-test-secret"))
	require.NoError(t, err)
	report := filepath.Join(t.TempDir(), "isotest-report.json")
	srv, err := server.New(server.Config{Provisioner: d.Provisioner, Router: d.Router, Admin: d.Admin, Keys: keys, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Console: console.FS(), InitReport: d.InitReport, IsotestReport: report})
	require.NoError(t, err)
	srv.Start()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })

	// The demo tenants with their sample data, and some traffic so the
	// performance view has numbers.
	for _, dt := range server.DemoTenants {
		_, err := server.Seed(ctx, d.Provisioner, server.RouterStore{R: d.Router}, dt.ID, dt.Name, 3)
		require.NoError(t, err)
	}
	mint := func(tenant tenancy.ID, roles ...server.Role) string {
		tok, err := keys.Mint(server.MintOpts{Tenant: tenant, Subject: "console-test", Roles: roles, TTL: time.Hour})
		require.NoError(t, err)
		return tok
	}
	for i, dt := range server.DemoTenants {
		tok := mint(dt.ID, server.RoleAdmin)
		for j := 0; j < 10*(i+1); j++ {
			path := []string{"/api/v1/brands", "/api/v1/licensees", "/api/v1/agreements"}[j%3]
			req, _ := http.NewRequest("GET", ts.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := ts.Client().Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			require.Equal(t, 200, res.StatusCode)
		}
	}

	shots, err := filepath.Abs("../../../docs/console")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(shots, 0o755))
	// A real isotest run against this deployment: the report the security
	// view shows once it is copied to the server's report path mid-run.
	rep, err := isotest.Audit(ctx, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}, nil)
	require.NoError(t, err)
	// The view must show whatever the run found; failures are logged here
	// (e.g. DOS-001 when the router sets no statement timeout, as main.go).
	for _, r := range rep.Results {
		if r.Verdict == isotest.Fail || r.Verdict == isotest.Error {
			t.Logf("isotest %s %s (%s): %s: %s", r.Verdict, r.ID, r.Class, r.Title, r.Evidence)
		}
	}
	t.Logf("isotest summary: %+v", rep.Summary)
	fixture := filepath.Join(t.TempDir(), "isotest-run.json")
	f, err := os.Create(fixture)
	require.NoError(t, err)
	require.NoError(t, rep.WriteJSON(f))
	require.NoError(t, f.Close())

	rctx, cancel := context.WithTimeout(ctx, 4*time.Minute) // ~35 s on an idle 2-core machine
	defer cancel()
	cmd := exec.CommandContext(rctx, node, "e2e/console.e2e.mjs")
	cmd.Env = append(os.Environ(),
		"BASE_URL="+ts.URL, "OPERATOR_TOKEN="+mint("", server.RoleOperator), "CHROMIUM="+chromiumPath(),
		"SHOT_DIR="+shots, "REPORT_PATH="+report, "REPORT_FIXTURE="+fixture)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	t.Logf("browser run (%s):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	require.NoError(t, err, "the browser test failed; its output is above")
	for _, name := range []string{"signin", "dashboard", "wizard", "wizard-review", "wizard-failure", "delete-dialog", "security", "security-isotest", "performance"} {
		fi, err := os.Stat(filepath.Join(shots, name+".png"))
		require.NoError(t, err)
		require.Greater(t, fi.Size(), int64(1000), fmt.Sprintf("%s.png is not a screenshot", name))
	}
}
