package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-go/bulkhead/router"
)

// consoleEnv is setup() with a second handler configured as the console
// needs it: static files, the deployment's Init report and an isotest report
// path.
func consoleEnv(t *testing.T, report string) (*env, *httptest.Server) {
	e := setup(t, nil)
	srv, err := New(Config{Provisioner: e.d.Provisioner, Router: e.d.Router, Admin: e.d.Admin, Keys: e.keys, Metrics: NewMetrics(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SizeRefresh: -1,
		Console:    fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>console</title>")}, "assets/console.js": {Data: []byte("//js")}},
		InitReport: e.d.InitReport, IsotestReport: report})
	require.NoError(t, err)
	srv.Start()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return e, ts
}

func TestConsoleEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	op := e.operator()
	admin := e.token("tenant-a", "alice", RoleAdmin)

	// Operators only, like the rest of the management API.
	for _, p := range []string{"/api/v1/platform/overview", "/api/v1/platform/security", "/api/v1/platform/metrics"} {
		e.must(403, e.do("GET", p, admin, nil))
		e.must(401, e.do("GET", p, "", nil))
	}

	// Overview: counts by status, restorable deletions, sizes, last activity.
	e.must(201, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": "Roadrunner"}))
	e.must(200, e.do("POST", "/api/v1/tenants/tenant-b/suspend", op, nil))
	e.must(201, e.do("POST", "/api/v1/tenants", op, map[string]any{"id": "gone"}))
	e.must(200, e.do("DELETE", "/api/v1/tenants/gone/schema?retention=24h", op, nil))
	ov := e.must(200, e.do("GET", "/api/v1/platform/overview", op, nil))
	counts := ov.Body["counts"].(map[string]any)
	require.EqualValues(t, 1, counts["active"])
	require.EqualValues(t, 1, counts["suspended"])
	require.EqualValues(t, 1, counts["deleted"])
	require.EqualValues(t, 0, counts["provisioning"])
	require.EqualValues(t, 1, ov.Body["deleted_in_retention"])
	byID := map[string]map[string]any{}
	for _, it := range ov.Body["tenants"].([]any) {
		m := it.(map[string]any)
		byID[m["id"].(string)] = m
	}
	require.Len(t, byID, 3)
	require.Equal(t, true, byID["tenant-a"]["schema_exists"])
	require.Greater(t, byID["tenant-a"]["size_bytes"].(float64), 0.0)
	require.Greater(t, byID["tenant-a"]["objects"].(float64), 4.0)
	require.NotNil(t, byID["tenant-a"]["last_activity"], "brand.create is audited")
	require.NotNil(t, byID["tenant-b"]["last_activity"], "the suspension is audited")

	// Security without an Init report or isotest report: both say so.
	sec := e.must(200, e.do("GET", "/api/v1/platform/security", op, nil))
	require.Equal(t, "SessionRole", sec.str("mode"))
	require.NotEmpty(t, sec.Body["mode_risks"])
	require.NotEmpty(t, sec.Body["residual_risks"])
	require.Equal(t, false, sec.Body["hardening"].(map[string]any)["available"])
	iso := sec.Body["isotest"].(map[string]any)
	require.Equal(t, false, iso["available"])
	require.Contains(t, iso["reason"], "no isotest report yet")

	// Metrics summary: the requests above, per tenant.
	e.must(200, e.do("GET", "/api/v1/brands", admin, nil))
	ms := e.must(200, e.do("GET", "/api/v1/platform/metrics", op, nil))
	var a map[string]any
	for _, it := range ms.Body["tenants"].([]any) {
		if m := it.(map[string]any); m["tenant"] == "tenant-a" {
			a = m
		}
	}
	require.NotNil(t, a, ms.Raw)
	require.EqualValues(t, 2, a["requests"])
	lat := a["latency"].(map[string]any)
	require.EqualValues(t, 2, lat["count"])
	require.Greater(t, lat["p95_seconds"].(float64), 0.0)
	require.GreaterOrEqual(t, lat["p95_seconds"].(float64), lat["p50_seconds"].(float64))
	ch := a["checkouts"].(map[string]any)
	require.Greater(t, ch["ok"].(float64)+ch["switched"].(float64), 0.0)
	require.Contains(t, ms.Body["pool"], "total_conns")

	// Without Config.Console, /admin/ says the console is not built in.
	require.Contains(t, e.must(404, e.do("GET", "/admin/", "", nil)).str("message"), "not built into this server")
}

func TestConsoleStaticAndReports(t *testing.T) {
	t.Parallel()
	report := filepath.Join(t.TempDir(), "isotest.json")
	e, ts := consoleEnv(t, report)
	op := e.operator()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", ts.URL+path, nil)
		require.NoError(t, err)
		if strings.HasPrefix(path, "/api/") {
			req.Header.Set("Authorization", "Bearer "+op)
		}
		res, err := ts.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res, string(b)
	}

	// Static files, no authentication (the console signs in itself), with a
	// strict content security policy.
	res, body := get("/admin/")
	require.Equal(t, 200, res.StatusCode)
	require.Contains(t, body, "<title>console</title>")
	require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	res, _ = get("/admin/assets/console.js")
	require.Equal(t, 200, res.StatusCode)
	res, _ = get("/admin")
	require.Equal(t, 200, res.StatusCode, "redirected to /admin/")
	res, _ = get("/admin/assets/")
	require.Equal(t, 404, res.StatusCode, "no directory listing")
	res, _ = get("/admin/nothing.js")
	require.Equal(t, 404, res.StatusCode)

	// The hardening report of the deployment's Init.
	_, body = get("/api/v1/platform/security")
	require.Contains(t, body, `"available":true,"checks":[{"name":`)

	// isotest report: missing file, not JSON, then a report.
	_, body = get("/api/v1/platform/security")
	require.Contains(t, body, "does not exist")
	require.NoError(t, os.WriteFile(report, []byte("not json"), 0o600))
	_, body = get("/api/v1/platform/security")
	require.Contains(t, body, "is not a JSON object")
	require.NoError(t, os.WriteFile(report, []byte(`{"tool":"isotest","mode":"SessionRole","summary":{"pass":1},"results":[{"id":"a1","class":"data","verdict":"pass"}]}`), 0o600))
	_, body = get("/api/v1/platform/security")
	require.Contains(t, body, `"report":{"tool":"isotest","mode":"SessionRole"`)
	require.Contains(t, body, `"available":true,"modified_at"`)
}

// TestHistogramQuantiles checks the quantile estimate against
// histogram_quantile's rules.
func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	bucket := func(le float64, n uint64) *dto.Bucket {
		return &dto.Bucket{UpperBound: proto.Float64(le), CumulativeCount: proto.Uint64(n)}
	}
	var h histSummary
	// 100 observations: 50 in (0, 0.01], 40 in (0.01, 0.1], 10 in (0.1, 1].
	h.add(&dto.Histogram{SampleCount: proto.Uint64(60), SampleSum: proto.Float64(3), Bucket: []*dto.Bucket{bucket(0.01, 30), bucket(0.1, 55), bucket(1, 60)}})
	h.add(&dto.Histogram{SampleCount: proto.Uint64(40), SampleSum: proto.Float64(1), Bucket: []*dto.Bucket{bucket(0.01, 20), bucket(0.1, 35), bucket(1, 40)}})
	h.finish()
	require.EqualValues(t, 100, h.Count)
	require.InDelta(t, 0.01, h.P50, 1e-9)                 // rank 50 is the top of the first bucket
	require.InDelta(t, 0.1+0.9*(95-90)/10.0, h.P95, 1e-9) // interpolated in (0.1, 1]
	var empty histSummary
	empty.finish()
	require.Zero(t, empty.P95)
}

// TestModeDescriptions: every isolation mode the router has is described in
// plain words on the security view.
func TestModeDescriptions(t *testing.T) {
	t.Parallel()
	for _, m := range []router.Mode{router.SessionRole, router.TxLocal, router.TenantLogin} {
		require.NotEmpty(t, modeSummary[m], m.String())
		require.Len(t, modeRisks[m], 2, m.String())
	}
}
