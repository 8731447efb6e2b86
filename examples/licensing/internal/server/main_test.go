package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func TestMain(m *testing.M) { isotest.Main(m) }

// env is one test's server: its own database, two tenants "tenant-a" and
// "tenant-b", a real HTTP server in front.
type env struct {
	t    *testing.T
	d    *isotest.Deployment
	srv  *Server
	ts   *httptest.Server
	keys *Keys
	m    *Metrics
}

type setupOpts struct {
	mode      router.Mode
	lockout   time.Duration
	threshold int
}

func setup(t *testing.T, o *setupOpts) *env {
	t.Helper()
	if o == nil {
		o = &setupOpts{}
	}
	m := NewMetrics()
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations(), Router: router.Config{Mode: o.mode, Tracer: m}})
	keys, err := NewKeys([]byte("test-master-secret-test-master-secret"))
	require.NoError(t, err)
	srv, err := New(Config{Provisioner: d.Provisioner, Router: d.Router, Admin: d.Admin, Keys: keys, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SizeRefresh: -1, LockoutCooldown: o.lockout, LockoutThreshold: o.threshold})
	require.NoError(t, err)
	srv.Start()
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	ctx := context.Background()
	for _, id := range []tenancy.ID{"tenant-a", "tenant-b"} {
		_, err := d.Provisioner.Create(ctx, id, nil)
		require.NoError(t, err)
	}
	return &env{t: t, d: d, srv: srv, ts: ts, keys: keys, m: m}
}

func (e *env) token(tenant tenancy.ID, sub string, roles ...Role) string {
	tok, err := e.keys.Mint(MintOpts{Tenant: tenant, Subject: sub, Roles: roles})
	require.NoError(e.t, err)
	return tok
}

func (e *env) operator() string { return e.token("", "ops", RoleOperator) }

// resp is a decoded response.
type resp struct {
	Code int
	Body map[string]any
	Raw  string
	Hdr  http.Header
}

func (r resp) str(k string) string {
	s, _ := r.Body[k].(string)
	return s
}

func (r resp) items() []map[string]any {
	var out []map[string]any
	its, _ := r.Body["items"].([]any)
	for _, it := range its {
		out = append(out, it.(map[string]any))
	}
	return out
}

// do sends a request; hdr are alternating header names and values.
func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.ts.Client().Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	out := resp{Code: res.StatusCode, Raw: string(raw), Hdr: res.Header}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		require.NoError(e.t, json.Unmarshal(raw, &out.Body), string(raw))
	}
	return out
}

// must asserts the status code and returns the response.
func (e *env) must(code int, r resp) resp {
	e.t.Helper()
	require.Equal(e.t, code, r.Code, r.Raw)
	return r
}

// audit returns tenant's audit events with action.
func (e *env) audit(tenant tenancy.ID, action string) []provision.AuditEvent {
	evs, err := e.d.Provisioner.ListAudit(context.Background(), provision.AuditQuery{Tenant: tenant, Action: action, Limit: 1000})
	require.NoError(e.t, err)
	return evs
}
