package server

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestManagementAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	op := e.operator()

	// RBAC: tenant tokens, even admin, cannot manage tenants.
	e.must(403, e.do("GET", "/api/v1/tenants", e.token("tenant-a", "alice", RoleAdmin), nil))

	// Create.
	c := e.must(201, e.do("POST", "/api/v1/tenants", op, map[string]any{"id": "acme", "name": "Acme", "limits": map[string]any{"max_conns": 3}, "settings": map[string]any{"plan": "gold"}}))
	require.Equal(t, "active", c.str("status"))
	require.Equal(t, "gold", c.Body["settings"].(map[string]any)["plan"])
	e.must(409, e.do("POST", "/api/v1/tenants", op, map[string]any{"id": "acme"}))
	bad := e.must(400, e.do("POST", "/api/v1/tenants", op, map[string]any{"id": "Bad ID", "limits": map[string]any{"max_conns": -1}, "settings": []int{1}}))
	for _, f := range []string{"id", "limits", "settings"} {
		require.Contains(t, bad.Body["fields"], f)
	}
	e.must(201, e.do("POST", "/api/v1/tenants/beta/schema", op, nil))
	e.must(409, e.do("POST", "/api/v1/tenants/beta/schema", op, nil))
	e.must(400, e.do("POST", "/api/v1/tenants/beta2/schema", op, map[string]any{"id": "other"}))

	// The new tenant is usable at once.
	e.must(201, e.do("POST", "/api/v1/brands", e.token("acme", "al", RoleAdmin), map[string]any{"name": "Roadrunner"}))

	// List: paging and status filter.
	l := e.must(200, e.do("GET", "/api/v1/tenants?limit=2", op, nil))
	require.Len(t, l.items(), 2)
	require.Equal(t, "beta", l.str("next"))
	l = e.must(200, e.do("GET", "/api/v1/tenants?limit=2&after=beta", op, nil))
	require.Len(t, l.items(), 2) // tenant-a, tenant-b
	e.must(400, e.do("GET", "/api/v1/tenants?status=gone", op, nil))

	// Get and patch.
	require.Equal(t, "Acme", e.must(200, e.do("GET", "/api/v1/tenants/acme", op, nil)).str("name"))
	e.must(404, e.do("GET", "/api/v1/tenants/nobody", op, nil))
	e.must(404, e.do("GET", "/api/v1/tenants/NOT VALID", op, nil))
	p := e.must(200, e.do("PATCH", "/api/v1/tenants/acme", op, map[string]any{"name": "Acme Corp", "limits": map[string]any{"max_conns": 5, "statement_timeout_ms": 2000}, "settings": map[string]any{"plan": "platinum"}}))
	require.Equal(t, "Acme Corp", p.str("name"))
	require.EqualValues(t, 5, p.Body["limits"].(map[string]any)["max_conns"])
	require.Equal(t, "platinum", p.Body["settings"].(map[string]any)["plan"])
	e.must(400, e.do("PATCH", "/api/v1/tenants/acme", op, map[string]any{"limits": map[string]any{"max_conns": -2}}))
	e.must(404, e.do("PATCH", "/api/v1/tenants/nobody", op, map[string]any{"name": "x"}))

	// Lifecycle: suspend blocks the tenant's users at once; activate restores.
	user := e.token("acme", "al", RoleAdmin)
	require.Equal(t, "suspended", e.must(200, e.do("POST", "/api/v1/tenants/acme/suspend", op, nil)).str("status"))
	require.Equal(t, "tenant_context", e.must(403, e.do("GET", "/api/v1/brands", user, nil)).str("error"))
	e.must(409, e.do("POST", "/api/v1/tenants/acme/suspend", op, nil))
	e.must(200, e.do("POST", "/api/v1/tenants/acme/activate", op, nil))
	e.must(200, e.do("GET", "/api/v1/brands", user, nil))
	e.must(200, e.do("POST", "/api/v1/tenants/acme/archive", op, nil))
	e.must(403, e.do("GET", "/api/v1/brands", user, nil))
	e.must(409, e.do("POST", "/api/v1/tenants/acme/restore", op, nil))
	e.must(200, e.do("POST", "/api/v1/tenants/acme/activate", op, nil))
	e.must(404, e.do("POST", "/api/v1/tenants/nobody/activate", op, nil))

	// Schema status: version, size and objects from the admin side.
	st := e.must(200, e.do("GET", "/api/v1/tenants/acme/schema/status", op, nil))
	require.Equal(t, true, st.Body["exists"])
	require.Greater(t, st.Body["size_bytes"].(float64), 0.0)
	require.Greater(t, st.Body["objects"].(float64), 4.0)
	require.Equal(t, st.Body["latest_version"], st.Body["schema_version"])
	e.must(404, e.do("GET", "/api/v1/tenants/nobody/schema/status", op, nil))

	// Soft delete with retention, then restore with the data intact.
	e.must(400, e.do("DELETE", "/api/v1/tenants/acme/schema?retention=soon", op, nil))
	d := e.must(200, e.do("DELETE", "/api/v1/tenants/acme/schema?retention=48h", op, nil))
	require.Equal(t, "deleted", d.str("status"))
	until, err := time.Parse(time.RFC3339Nano, d.str("retain_until"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(48*time.Hour), until, time.Minute)
	e.must(403, e.do("GET", "/api/v1/brands", user, nil))
	require.Equal(t, "deleted", e.must(200, e.do("GET", "/api/v1/tenants/acme/schema/status", op, nil)).str("status"))
	require.Len(t, e.must(200, e.do("GET", "/api/v1/tenants?status=deleted", op, nil)).items(), 1)
	e.must(200, e.do("POST", "/api/v1/tenants/acme/restore", op, nil))
	require.Len(t, e.must(200, e.do("GET", "/api/v1/brands", user, nil)).items(), 1)

	// Operators act on a tenant with X-Tenant; every switch is audited.
	e.must(200, e.do("GET", "/api/v1/brands", op, nil, "X-Tenant", "acme"))
	e.must(201, e.do("POST", "/api/v1/brands", op, map[string]any{"name": "By ops"}, "X-Tenant", "acme"))
	sw := e.audit("acme", "operator.switch_tenant")
	require.Len(t, sw, 2)
	require.Equal(t, "operator:ops", sw[0].Actor)
	require.Equal(t, "POST /api/v1/brands", sw[0].Target)
	// Lifecycle events carry the operator as actor.
	ev := e.audit("acme", "tenant.suspend")
	require.Len(t, ev, 1)
	require.Equal(t, "operator:ops", ev[0].Actor)
	pa := e.must(200, e.do("GET", "/api/v1/platform/audit?tenant=acme&limit=100", op, nil))
	require.GreaterOrEqual(t, len(pa.items()), 10)
	e.must(400, e.do("GET", "/api/v1/platform/audit?tenant=NO", op, nil))
}

// TestOpenAPIInSync checks that every route the mux serves is described and
// every described operation is served, and that the README's RBAC matrix is
// the code's.
func TestOpenAPIInSync(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	r := e.must(200, e.do("GET", "/openapi.json", "", nil))
	paths := r.Body["paths"].(map[string]any)
	described := map[string]bool{}
	for p, ops := range paths {
		for m := range ops.(map[string]any) {
			described[strings.ToUpper(m)+" "+p] = true
		}
	}
	served := map[string]bool{}
	for _, rt := range e.srv.routes {
		served[rt.Method+" "+rt.Pattern] = true
	}
	for _, ir := range infraRoutes {
		served[ir.Method+" "+ir.Pattern] = true
	}
	require.Equal(t, served, described)
	// Each described operation is what the mux routes it to (not the 404 catch-all).
	for op := range described {
		method, path, _ := strings.Cut(op, " ")
		req, err := http.NewRequest(method, strings.ReplaceAll(path, "{id}", "x"), nil)
		require.NoError(t, err)
		_, pattern := e.srv.mux.Handler(req)
		require.Equal(t, op, pattern)
	}
	// Every referenced schema exists.
	comps := r.Body["components"].(map[string]any)["schemas"].(map[string]any)
	raw, _ := json.Marshal(paths)
	for _, m := range strings.Split(string(raw), `"#/components/schemas/`)[1:] {
		name, _, _ := strings.Cut(m, `"`)
		require.Contains(t, comps, name)
	}

	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(readme), rbacMarkdown()),
		"README's RBAC matrix differs from permissionMatrix; paste this:\n%s", rbacMarkdown())
}

func TestObservability(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	require.Equal(t, "ok", e.must(200, e.do("GET", "/healthz", "", nil)).str("status"))
	ready := e.must(200, e.do("GET", "/readyz", "", nil))
	require.Equal(t, "ready", ready.str("status"))
	tok := e.token("tenant-a", "alice", RoleAdmin)
	r := e.must(201, e.do("POST", "/api/v1/brands", tok, map[string]any{"name": "M"}, "X-Request-Id", "req-123"))
	require.Equal(t, "req-123", r.Hdr.Get("X-Request-Id"))
	e.do("GET", "/api/v1/brands", "", nil)
	e.srv.refreshSizesOnce()
	m := e.must(200, e.do("GET", "/metrics", "", nil)).Raw
	for _, want := range []string{
		`licensing_http_request_duration_seconds_bucket{route="/api/v1/brands",tenant="tenant-a",le=`,
		`licensing_http_requests_total{code="201",method="POST",route="/api/v1/brands",tenant="tenant-a"} 1`,
		`licensing_http_requests_total{code="401",method="GET",route="/api/v1/brands",tenant="_none"} 1`,
		`bulkhead_checkouts_total{result=`,
		`bulkhead_checkout_wait_seconds_bucket{tenant="tenant-a"`,
		`bulkhead_tenant_schema_size_bytes{tenant="tenant-a"}`,
		`bulkhead_tenant_schema_size_bytes{tenant="tenant-b"}`,
		`bulkhead_pool_acquired_conns`,
		`licensing_auth_failures_total{reason="missing"} 1`,
	} {
		require.Contains(t, m, want)
	}
}
