package server

// The admin console's side of the server: the static console at /admin/ and
// three read-only endpoints for platform operators that the management API
// does not answer in one call (tenant overview, security status, metrics
// summary). Nothing here changes tenants.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// consoleRoutes are the console's read-only management endpoints.
func (s *Server) consoleRoutes() []route {
	return []route{
		{Method: "GET", Pattern: "/api/v1/platform/overview", Perm: PermTenantsManage, Summary: "Tenant counts by status and, per tenant, schema size, object count and last audited activity", Resp: "Overview", Success: 200, h: s.overview},
		{Method: "GET", Pattern: "/api/v1/platform/security", Perm: PermTenantsManage, Summary: "Isolation mode, hardening report and the latest isotest report of the deployment", Resp: "SecurityStatus", Success: 200, h: s.securityStatus},
		{Method: "GET", Pattern: "/api/v1/platform/metrics", Perm: PermTenantsManage, Summary: "Per-tenant request latency, checkouts, waits and schema sizes from the server's metrics, as JSON", Resp: "MetricsSummary", Success: 200, h: s.metricsSummary},
	}
}

func init() {
	num := map[string]any{"type": "number"}
	nullableTime := map[string]any{"type": []string{"string", "null"}, "format": "date-time"}
	schemas["Overview"] = obj(map[string]any{
		"counts":               map[string]any{"type": "object", "additionalProperties": integer},
		"deleted_in_retention": integer,
		"tenants": map[string]any{"type": "array", "items": obj(map[string]any{
			"id": str, "schema_exists": map[string]any{"type": "boolean"}, "size_bytes": integer, "objects": integer, "last_activity": nullableTime,
		})},
		"measured_at": timeT,
	})
	schemas["SecurityStatus"] = obj(map[string]any{
		"mode": str, "mode_summary": str, "mode_risks": strs, "residual_risks": strs,
		"hardening": obj(map[string]any{"available": map[string]any{"type": "boolean"}, "source": str, "note": str,
			"checks": map[string]any{"type": "array", "items": obj(map[string]any{"name": str, "state": str, "detail": str})}}),
		"isotest": obj(map[string]any{"available": map[string]any{"type": "boolean"}, "path": str, "reason": str, "modified_at": timeT,
			"report": map[string]any{"type": "object", "description": "the isotest JSON report, as written by the harness"}}),
	})
	hist := obj(map[string]any{"count": integer, "sum_seconds": num, "p50_seconds": num, "p95_seconds": num, "p99_seconds": num})
	schemas["MetricsSummary"] = obj(map[string]any{
		"generated_at": timeT,
		"pool":         obj(map[string]any{"acquired_conns": integer, "total_conns": integer, "empty_acquire_total": integer}),
		"tenants": map[string]any{"type": "array", "items": obj(map[string]any{
			"tenant": str, "requests": integer, "client_errors": integer, "server_errors": integer,
			"latency": hist, "checkout_wait": hist, "checkout_held": hist,
			"checkouts":         map[string]any{"type": "object", "additionalProperties": integer},
			"schema_size_bytes": integer, "schema_objects": integer,
		})},
	})
}

// consoleHandler serves the console's static files (an fs.FS whose root
// holds index.html) under /admin/, without directory listings. A nil files
// answers 404 with a hint.
func consoleHandler(files fs.FS) http.Handler {
	if files == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "the admin console is not built into this server (Config.Console is nil)", nil)
		})
	}
	fsrv := http.StripPrefix("/admin", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The console is same-origin static code: no inline script, no
		// third-party origins, never framed.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// File names carry no content hash (the build is byte-for-byte
		// reproducible and committed), so browsers must revalidate.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path != "/admin/" && strings.HasSuffix(r.URL.Path, "/") {
			writeError(w, http.StatusNotFound, "not_found", "no such file", nil)
			return
		}
		fsrv.ServeHTTP(w, r)
	})
}

// mountConsole registers /admin/.
func (s *Server) mountConsole() {
	s.mux.Handle("GET /admin/", consoleHandler(s.cfg.Console))
}

// overviewTenant is one tenant's line of the overview.
type overviewTenant struct {
	ID           tenancy.ID `json:"id"`
	SchemaExists bool       `json:"schema_exists"`
	SizeBytes    int64      `json:"size_bytes"`
	Objects      int64      `json:"objects"`
	LastActivity *time.Time `json:"last_activity"`
}

// overview serves GET /api/v1/platform/overview: counts by status, tenants
// deleted but still restorable, and per tenant the schema size and object
// count (measured now, on the admin side) and the time of its latest audit
// event (mutations, lifecycle, operator switches, authentication failures;
// reads are not audited, so a read-only tenant shows its last write).
func (s *Server) overview(w http.ResponseWriter, r *http.Request, _ *reqCtx) {
	ctx := r.Context()
	p := s.cfg.Provisioner
	counts, err := p.Counts(ctx)
	if err != nil {
		s.internal(w, r, fmt.Errorf("counting tenants: %w", err))
		return
	}
	now := time.Now()
	var all []*tenancy.Tenant
	opts := &provision.ListOpts{Limit: 1000}
	for {
		res, err := p.List(ctx, opts)
		if err != nil {
			s.internal(w, r, fmt.Errorf("listing tenants: %w", err))
			return
		}
		all = append(all, res.Tenants...)
		if res.Next == "" {
			break
		}
		opts.After = res.Next
	}
	schemas := make([]string, 0, len(all))
	retained := 0
	for _, t := range all {
		schemas = append(schemas, t.Schema)
		if t.Status == tenancy.StatusDeleted && t.RetainUntil != nil && t.RetainUntil.After(now) {
			retained++
		}
	}
	sizes, err := s.schemaSizes(ctx, schemas)
	if err != nil {
		s.internal(w, r, fmt.Errorf("measuring schemas: %w", err))
		return
	}
	last, err := s.lastActivity(r)
	if err != nil {
		s.internal(w, r, fmt.Errorf("reading last activity: %w", err))
		return
	}
	out := make([]overviewTenant, 0, len(all))
	for _, t := range all {
		ot := overviewTenant{ID: t.ID}
		if sz, ok := sizes[t.Schema]; ok {
			ot.SchemaExists, ot.SizeBytes, ot.Objects = true, sz.bytes, sz.objects
		}
		if at, ok := last[string(t.ID)]; ok {
			ot.LastActivity = &at
		}
		out = append(out, ot)
	}
	cm := map[string]int64{}
	for _, st := range []tenancy.Status{tenancy.StatusProvisioning, tenancy.StatusActive, tenancy.StatusSuspended, tenancy.StatusArchived, tenancy.StatusDeleted} {
		cm[string(st)] = counts[st]
	}
	writeJSON(w, http.StatusOK, map[string]any{"counts": cm, "deleted_in_retention": retained, "tenants": out, "measured_at": now.UTC()})
}

// lastActivity returns each tenant's latest audit event time. The audit
// log's tenant index makes this one index scan per tenant; it is an
// admin-side read of the control schema (example code, as settings()).
func (s *Server) lastActivity(r *http.Request) (map[string]time.Time, error) {
	cs := quoteIdent(s.cfg.Provisioner.Config().ControlSchema)
	rows, err := s.cfg.Admin.Query(r.Context(), "SELECT tenant_id, max(at) FROM "+cs+".audit_log WHERE tenant_id IS NOT NULL GROUP BY tenant_id")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	var id string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		out[id] = at.UTC()
		return nil
	})
	return out, err
}

// modeRisks are the plain-words limits of each isolation mode, the same as
// the README and docs/SECURITY.md state them.
var (
	modeSummary = map[router.Mode]string{
		router.SessionRole: "Shared pool as the gateway login; each checkout switches the connection to the tenant's own role and schema (SET ROLE, search_path) and verifies the switch. The database refuses cross-tenant access, not application code.",
		router.TxLocal:     "Every unit of work is a transaction that starts with SET LOCAL ROLE and SET LOCAL search_path; role and schema end with the transaction. Safe behind transaction-pooling proxies.",
		router.TenantLogin: "A pool per active tenant, logging in as the tenant's own login role, under a global connection budget. The session user belongs to one tenant only.",
	}
	modeRisks = map[router.Mode][]string{
		router.SessionRole: {
			"Protects against application bugs (wrong tenant in code, forgotten filters, stale connections) and data-only injection.",
			"Does not protect against SQL a tenant writes itself: such SQL can SET ROLE to another tenant, because the shared gateway is a member of every active tenant role. Keep tenant input out of SQL text, or use a per-tenant login mode for report builders, SQL consoles and plugins.",
		},
		router.TxLocal: {
			"Protects against application bugs and data-only injection, as SessionRole; nothing of a tenant outlives its transaction.",
			"Does not protect against SQL a tenant writes itself: such SQL can SET ROLE to another tenant, because the shared gateway is a member of every active tenant role.",
		},
		router.TenantLogin: {
			"Protects against application bugs, injection and SQL a tenant writes itself: the login role is a member of its own tenant role only, so SET ROLE to another tenant is refused by PostgreSQL.",
			"Costs connections per active tenant: pools are bounded and evicted least-recently-used under the global budget, so a burst of many tenants waits for connections.",
		},
	}
	residualRisks = []string{
		"Catalog names are visible to everyone in one database: any role can read schema, table and role names of other tenants from pg_catalog. The names are random keys, not tenant IDs.",
		"A tenant can use shared CPU and I/O up to its statement timeout and its cap on concurrent connections; PostgreSQL has no per-role CPU quota.",
		"A suspension reaches each server within its status cache TTL (1 s by default); the database refuses new role switches at once.",
	}
)

// securityStatus serves GET /api/v1/platform/security.
func (s *Server) securityStatus(w http.ResponseWriter, r *http.Request, _ *reqCtx) {
	mode := s.cfg.Router.Mode()
	summary, ok := modeSummary[mode]
	if !ok {
		summary = "The console has no description of this mode; see the README's isolation model."
	}
	out := map[string]any{
		"mode": mode.String(), "mode_summary": summary, "mode_risks": modeRisks[mode], "residual_risks": residualRisks,
	}
	if rep := s.cfg.InitReport; rep != nil {
		checks := rep.Checks
		if checks == nil {
			checks = []provision.Check{}
		}
		out["hardening"] = map[string]any{"available": true, "source": "provision.Init, run when this server started", "checks": checks}
	} else {
		out["hardening"] = map[string]any{"available": false, "checks": []provision.Check{},
			"note": "provision.Init did not run in this process, so there is no hardening report: start the server with -init (it is idempotent) to record one."}
	}
	out["isotest"] = s.isotestReport()
	writeJSON(w, http.StatusOK, out)
}

// isotestReport reads the report file named by Config.IsotestReport at each
// request, so a new run shows up without a restart.
func (s *Server) isotestReport() map[string]any {
	path := s.cfg.IsotestReport
	if path == "" {
		return map[string]any{"available": false,
			"reason": "no isotest report yet: run the isolation harness against this deployment with JSON output and start the server with -isotest-report FILE (LICENSING_ISOTEST_REPORT)."}
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[string]any{"available": false, "path": path, "reason": "no isotest report yet: " + path + " does not exist."}
		}
		return map[string]any{"available": false, "path": path, "reason": "the isotest report cannot be read: " + err.Error()}
	}
	const maxReport = 16 << 20
	if fi.Size() > maxReport {
		return map[string]any{"available": false, "path": path, "reason": fmt.Sprintf("the isotest report is %d bytes, more than the %d this endpoint serves.", fi.Size(), maxReport)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return map[string]any{"available": false, "path": path, "reason": "the isotest report cannot be read: " + err.Error()}
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil || rep == nil {
		return map[string]any{"available": false, "path": path, "reason": "the isotest report is not a JSON object: " + path}
	}
	return map[string]any{"available": true, "path": path, "modified_at": fi.ModTime().UTC(), "report": json.RawMessage(b)}
}

// histSummary summarises a Prometheus histogram (merged over label sets).
type histSummary struct {
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
	P50        float64 `json:"p50_seconds"`
	P95        float64 `json:"p95_seconds"`
	P99        float64 `json:"p99_seconds"`

	buckets map[float64]uint64 // cumulative count by upper bound
}

func (h *histSummary) add(m *dto.Histogram) {
	if h.buckets == nil {
		h.buckets = map[float64]uint64{}
	}
	h.Count += m.GetSampleCount()
	h.SumSeconds += m.GetSampleSum()
	for _, b := range m.GetBucket() {
		h.buckets[b.GetUpperBound()] += b.GetCumulativeCount()
	}
}

// finish computes the quantiles the way PromQL's histogram_quantile does:
// linear interpolation inside the bucket holding the rank; a rank in the
// +Inf bucket reports the highest finite bound.
func (h *histSummary) finish() {
	if h.Count == 0 {
		return
	}
	bounds := make([]float64, 0, len(h.buckets))
	for b := range h.buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	q := func(phi float64) float64 {
		rank := phi * float64(h.Count)
		prevBound, prevCount := 0.0, 0.0
		for _, b := range bounds {
			c := float64(h.buckets[b])
			if c >= rank {
				if math.IsInf(b, 1) {
					return prevBound
				}
				if c == prevCount {
					return b
				}
				return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
			}
			prevBound, prevCount = b, c
		}
		return prevBound
	}
	h.P50, h.P95, h.P99 = q(0.50), q(0.95), q(0.99)
}

// tenantMetrics is one tenant's line of the metrics summary.
type tenantMetrics struct {
	Tenant       string           `json:"tenant"`
	Requests     uint64           `json:"requests"`
	ClientErrors uint64           `json:"client_errors"`
	ServerErrors uint64           `json:"server_errors"`
	Latency      histSummary      `json:"latency"`
	Wait         histSummary      `json:"checkout_wait"`
	Held         histSummary      `json:"checkout_held"`
	Checkouts    map[string]int64 `json:"checkouts"`
	SchemaBytes  *int64           `json:"schema_size_bytes"`
	SchemaObjs   *int64           `json:"schema_objects"`
}

// metricsSummary serves GET /api/v1/platform/metrics: the server's own
// Prometheus registry, gathered and summarised per tenant, so the console
// needs neither a Prometheus server nor a text-format parser. The tenant
// labels "_none" (unauthenticated) and "_platform" (management API) are kept.
func (s *Server) metricsSummary(w http.ResponseWriter, r *http.Request, _ *reqCtx) {
	mfs, err := s.m.Registry.Gather()
	if err != nil {
		s.internal(w, r, fmt.Errorf("gathering metrics: %w", err))
		return
	}
	tenants := map[string]*tenantMetrics{}
	get := func(m *dto.Metric) *tenantMetrics {
		var t string
		for _, l := range m.GetLabel() {
			if l.GetName() == "tenant" {
				t = l.GetValue()
			}
		}
		tm := tenants[t]
		if tm == nil {
			tm = &tenantMetrics{Tenant: t, Checkouts: map[string]int64{}}
			tenants[t] = tm
		}
		return tm
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	pool := map[string]int64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "licensing_http_requests_total":
				tm, n := get(m), uint64(m.GetCounter().GetValue())
				tm.Requests += n
				switch {
				case strings.HasPrefix(label(m, "code"), "4"):
					tm.ClientErrors += n
				case strings.HasPrefix(label(m, "code"), "5"):
					tm.ServerErrors += n
				}
			case "licensing_http_request_duration_seconds":
				get(m).Latency.add(m.GetHistogram())
			case "bulkhead_checkout_wait_seconds":
				get(m).Wait.add(m.GetHistogram())
			case "bulkhead_checkout_held_seconds":
				get(m).Held.add(m.GetHistogram())
			case "bulkhead_checkouts_total":
				get(m).Checkouts[label(m, "result")] += int64(m.GetCounter().GetValue())
			case "bulkhead_tenant_schema_size_bytes":
				v := int64(m.GetGauge().GetValue())
				get(m).SchemaBytes = &v
			case "bulkhead_tenant_schema_objects":
				v := int64(m.GetGauge().GetValue())
				get(m).SchemaObjs = &v
			case "bulkhead_pool_acquired_conns":
				pool["acquired_conns"] = int64(m.GetGauge().GetValue())
			case "bulkhead_pool_total_conns":
				pool["total_conns"] = int64(m.GetGauge().GetValue())
			case "bulkhead_pool_empty_acquire_total":
				pool["empty_acquire_total"] = int64(m.GetCounter().GetValue())
			}
		}
	}
	out := make([]*tenantMetrics, 0, len(tenants))
	for _, tm := range tenants {
		tm.Latency.finish()
		tm.Wait.finish()
		tm.Held.finish()
		out = append(out, tm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	writeJSON(w, http.StatusOK, map[string]any{"generated_at": time.Now().UTC(), "pool": pool, "tenants": out})
}
