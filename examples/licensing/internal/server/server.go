// Package server is the reference brand-licensing HTTP server on bulkhead:
// JWT tenant context, per-tenant RBAC, a management API for platform
// operators, the licensing API on tenant-scoped connections, an audit trail,
// Prometheus metrics and an OpenAPI description. See the README section "The
// reference server".
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Config configures a Server. Provisioner, Router, Admin and Keys are required.
type Config struct {
	// Provisioner manages tenants and writes the audit log (admin pool).
	Provisioner *provision.Provisioner
	// Router hands out tenant-scoped connections.
	Router *router.Router
	// Admin is the provisioning pool: readiness, schema sizes.
	Admin *pgxpool.Pool
	// Keys verifies tokens.
	Keys *Keys
	// Store serves the licensing API. Default: RouterStore{Router}.
	Store Store
	// Metrics are the Prometheus collectors; pass the same value as the
	// router's Tracer. Default: NewMetrics() (then pool events are not traced).
	Metrics *Metrics
	// Logger receives structured request logs. Default: slog.Default().
	Logger *slog.Logger
	// LockoutThreshold failed attempts within LockoutWindow lock a subject
	// out for LockoutCooldown. Defaults: 5, 15m, 15m.
	LockoutThreshold int
	LockoutWindow    time.Duration
	LockoutCooldown  time.Duration
	// SizeRefresh is how often the schema size gauges are refreshed; negative
	// disables the refresher. Default: 30s.
	SizeRefresh time.Duration
}

// Server is the HTTP server's handler and its background work.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	m       *Metrics
	lock    *lockout
	mux     *http.ServeMux
	handler http.Handler
	routes  []route
	audit   *auditor

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New returns a Server; Start begins its background work.
func New(cfg Config) (*Server, error) {
	if cfg.Provisioner == nil || cfg.Router == nil || cfg.Admin == nil || cfg.Keys == nil {
		return nil, errors.New("server: Config.Provisioner, Router, Admin and Keys are required")
	}
	if cfg.Store == nil {
		cfg.Store = RouterStore{R: cfg.Router}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LockoutThreshold == 0 {
		cfg.LockoutThreshold = 5
	}
	if cfg.LockoutWindow == 0 {
		cfg.LockoutWindow = 15 * time.Minute
	}
	if cfg.LockoutCooldown == 0 {
		cfg.LockoutCooldown = 15 * time.Minute
	}
	if cfg.SizeRefresh == 0 {
		cfg.SizeRefresh = 30 * time.Second
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, m: cfg.Metrics,
		lock: newLockout(cfg.LockoutThreshold, cfg.LockoutWindow, cfg.LockoutCooldown),
		mux:  http.NewServeMux(), stop: make(chan struct{}),
	}
	s.audit = newAuditor(cfg.Provisioner, cfg.Logger, cfg.Metrics.auditDrop)
	r := cfg.Router
	_ = cfg.Metrics.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bulkhead_pool_acquired_conns", Help: "Gateway pool connections checked out.",
	}, func() float64 { return float64(r.Stat().Pool.AcquiredConns()) }))
	_ = cfg.Metrics.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bulkhead_pool_total_conns", Help: "Gateway pool connections open.",
	}, func() float64 { return float64(r.Stat().Pool.TotalConns()) }))
	_ = cfg.Metrics.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "bulkhead_pool_empty_acquire_total", Help: "Gateway pool acquires that had to wait for a connection.",
	}, func() float64 { return float64(r.Stat().Pool.EmptyAcquireCount()) }))
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /openapi.json", s.openapi)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route", nil)
	})
	s.handler = s.mux
	return s, nil
}

// Start begins the background work (audit writer, schema size refresher).
func (s *Server) Start() {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.audit.run() }()
	if s.cfg.SizeRefresh > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.refreshSizes() }()
	}
}

// Close stops the background work, flushing queued audit events. It is
// idempotent. Close the http.Server first so no request is in flight.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.audit.close()
		s.wg.Wait()
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// route is one API endpoint. The OpenAPI description is generated from the
// route table and a test checks it against the mux.
type route struct {
	Method, Pattern string
	// Perm is the permission required; "" for tenant routes means any
	// authenticated principal of the tenant.
	Perm Permission
	// Tenant says the route runs inside a tenant (licensing API, audit).
	Tenant  bool
	Summary string
	// Body names the request schema (openapi.go), Resp the response schema.
	Body, Resp string
	Query      []string
	Success    int
	h          func(w http.ResponseWriter, r *http.Request, rc *reqCtx)
}

// reqCtx is what the middleware established about a request.
type reqCtx struct {
	ID        string
	Principal *Principal
	// Tenant is the tenant the request acts on ("" for management routes).
	Tenant tenancy.ID
	log    *slog.Logger
}

type ctxKey struct{}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status code.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap is the middleware of an API route: request id, authentication,
// lockout, tenant context, RBAC, then the handler; metrics and a log line
// for every request.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := &reqCtx{ID: r.Header.Get("X-Request-Id")}
		if rc.ID == "" || len(rc.ID) > 64 {
			rc.ID = newRequestID()
		}
		w.Header().Set("X-Request-Id", rc.ID)
		sw := &statusWriter{ResponseWriter: w}
		tenantLabel := "_none"
		defer func() {
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			d := time.Since(start)
			s.m.requests.WithLabelValues(tenantLabel, r.Method, rt.Pattern, fmt.Sprint(code)).Inc()
			s.m.latency.WithLabelValues(tenantLabel, rt.Pattern).Observe(d.Seconds())
			attrs := []any{"request_id", rc.ID, "method", r.Method, "route", rt.Pattern, "status", code, "duration_ms", float64(d.Microseconds()) / 1000}
			if rc.Principal != nil {
				attrs = append(attrs, "actor", rc.Principal.Actor())
			}
			if rc.Tenant != "" {
				attrs = append(attrs, "tenant", string(rc.Tenant))
			}
			lvl := slog.LevelInfo
			if code >= 500 {
				lvl = slog.LevelError
			}
			s.log.Log(r.Context(), lvl, "request", attrs...)
		}()
		rc.log = s.log.With("request_id", rc.ID)

		p, ok := s.authenticate(sw, r, rc)
		if !ok {
			return
		}
		rc.Principal = p
		tenantLabel = "_platform"
		ctx := tenancy.WithActor(r.Context(), p.Actor())
		if rt.Tenant {
			id, ok := s.tenantContext(ctx, sw, r, p)
			if !ok {
				return
			}
			rc.Tenant = id
			tenantLabel = string(id)
			ctx = tenancy.WithTenant(ctx, id)
			rc.log = rc.log.With("tenant", string(id))
		}
		if rt.Perm != "" {
			roles := p.Roles
			if p.Operator && rt.Tenant {
				roles = []Role{RoleAdmin}
			}
			if !allows(roles, rt.Perm) {
				writeError(sw, http.StatusForbidden, "forbidden", fmt.Sprintf("permission %q is required", rt.Perm), nil)
				return
			}
		}
		rt.h(sw, r.WithContext(ctx), rc)
	})
}

// authenticate verifies the bearer token, enforcing the lockout.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rc *reqCtx) (*Principal, bool) {
	h := r.Header.Get("Authorization")
	raw, found := strings.CutPrefix(h, "Bearer ")
	if !found || raw == "" {
		s.m.authFail.WithLabelValues("missing").Inc()
		writeError(w, http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer <token> header is required", nil)
		return nil, false
	}
	now := time.Now()
	subject := unverifiedSubject(raw)
	if until, locked := s.lock.locked(subject, now); locked {
		s.m.authFail.WithLabelValues("locked").Inc()
		w.Header().Set("Retry-After", fmt.Sprint(int(time.Until(until).Seconds())+1))
		writeError(w, http.StatusTooManyRequests, "locked_out", "too many failed attempts for this subject; try again later", nil)
		return nil, false
	}
	p, err := s.cfg.Keys.verify(raw, now)
	if err != nil {
		s.m.authFail.WithLabelValues("invalid").Inc()
		lockedNow := s.lock.fail(subject, now)
		tid, sub, _ := strings.Cut(subject, "/")
		detail := map[string]any{"reason": err.Error(), "path": r.URL.Path, "request_id": rc.ID, "remote": r.RemoteAddr}
		if lockedNow {
			detail["locked_out"] = true
		}
		tenant := tenancy.ID(tid)
		if tenant.Validate() != nil {
			tenant = ""
		}
		s.audit.async(auditEvent{Actor: "anonymous:" + sub, Tenant: tenant, Action: "auth.failure", Target: sub, Detail: detail})
		rc.log.Warn("authentication failed", "reason", err.Error(), "subject", subject)
		writeError(w, http.StatusUnauthorized, "invalid_token", "the bearer token is invalid or expired", nil)
		return nil, false
	}
	s.lock.succeed(subject)
	return p, true
}

// tenantContext decides which tenant a request acts on: a tenant token's own
// tenant (an X-Tenant header naming another tenant is refused), or, for an
// operator, the tenant named by X-Tenant, a switch that is audited. Nothing
// here touches a tenant's database; an invalid context is refused with 403.
func (s *Server) tenantContext(ctx context.Context, w http.ResponseWriter, r *http.Request, p *Principal) (tenancy.ID, bool) {
	hdr := r.Header.Get("X-Tenant")
	if !p.Operator {
		if hdr != "" && tenancy.ID(hdr) != p.Tenant {
			s.m.authFail.WithLabelValues("tenant_mismatch").Inc()
			writeError(w, http.StatusForbidden, "tenant_context", "X-Tenant does not match the token's tenant", nil)
			return "", false
		}
		return p.Tenant, true
	}
	if hdr == "" {
		writeError(w, http.StatusForbidden, "tenant_context", "operators must name the tenant to act on with the X-Tenant header", nil)
		return "", false
	}
	id, err := tenancy.ParseID(hdr)
	if err != nil {
		writeError(w, http.StatusForbidden, "tenant_context", err.Error(), nil)
		return "", false
	}
	// Every operator request inside a tenant is a context switch: audited
	// synchronously, before it acts, so no operator action goes unrecorded.
	if err := s.cfg.Provisioner.RecordAudit(ctx, id, "operator.switch_tenant", r.Method+" "+r.URL.Path, nil); err != nil {
		writeError(w, http.StatusServiceUnavailable, "audit_unavailable", "the audit log could not be written", nil)
		return "", false
	}
	return id, true
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks that both pools reach the database within 1 s.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	checks := map[string]string{}
	code := http.StatusOK
	for name, ping := range map[string]func(context.Context) error{
		"admin": s.cfg.Admin.Ping, "gateway": s.cfg.Router.Pool().Ping,
	} {
		if err := ping(ctx); err != nil {
			checks[name] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			checks[name] = "ok"
		}
	}
	status := "ready"
	if code != http.StatusOK {
		status = "not ready"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// writeJSON writes v as the response.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// apiError is every error response's body.
type apiError struct {
	Error   string            `json:"error"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func writeError(w http.ResponseWriter, code int, kind, msg string, fields map[string]string) {
	writeJSON(w, code, apiError{Error: kind, Message: msg, Fields: fields})
}
