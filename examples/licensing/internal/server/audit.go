package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// auditEvent is an event queued for the control-plane audit log.
type auditEvent struct {
	Actor  string
	Tenant tenancy.ID
	Action string
	Target string
	Detail map[string]any
}

// auditor writes audit events. Mutations and operator switches are written
// synchronously by the request (so a 2xx means the event is recorded);
// authentication failures go through a bounded queue so an unauthenticated
// flood cannot turn into a flood of database writes: when the queue is full
// events are dropped and counted (licensing_audit_dropped_total).
type auditor struct {
	p       *provision.Provisioner
	log     *slog.Logger
	dropped prometheus.Counter
	q       chan auditEvent
	mu      sync.Mutex
	closed  bool
	done    chan struct{}
}

func newAuditor(p *provision.Provisioner, log *slog.Logger, dropped prometheus.Counter) *auditor {
	return &auditor{p: p, log: log, dropped: dropped, q: make(chan auditEvent, 1024), done: make(chan struct{})}
}

func (a *auditor) async(ev auditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	select {
	case a.q <- ev:
	default:
		a.dropped.Inc()
	}
}

func (a *auditor) write(ctx context.Context, ev auditEvent) error {
	ctx = tenancy.WithActor(ctx, ev.Actor)
	return a.p.RecordAudit(ctx, ev.Tenant, ev.Action, ev.Target, ev.Detail)
}

func (a *auditor) run() {
	defer close(a.done)
	for ev := range a.q {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.write(ctx, ev); err != nil {
			a.log.Error("writing audit event", "action", ev.Action, "err", err)
		}
		cancel()
	}
}

// close stops accepting events and waits until the queue is written (run
// must have been started).
func (a *auditor) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.q)
	}
	a.mu.Unlock()
}

// recordMutation writes the audit event of a committed mutation.
func (s *Server) recordMutation(r *http.Request, rc *reqCtx, action, target string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["request_id"] = rc.ID
	// The mutation is committed: record it even if the caller went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	err := s.audit.write(ctx, auditEvent{Actor: rc.Principal.Actor(), Tenant: rc.Tenant, Action: action, Target: target, Detail: detail})
	if err != nil {
		// The mutation is committed; losing its audit event is logged loudly.
		rc.log.Error("writing audit event", "action", action, "target", target, "err", err)
	}
}

// listAudit serves GET /api/v1/audit: the tenant's events for its admins (and
// operators acting on it), newest first, paged by before_id.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.serveAudit(w, r, rc.Tenant)
}

// listAuditPlatform serves GET /api/v1/platform/audit for operators: every
// tenant's events, or one tenant's with ?tenant=.
func (s *Server) listAuditPlatform(w http.ResponseWriter, r *http.Request, _ *reqCtx) {
	var tenant tenancy.ID
	if t := r.URL.Query().Get("tenant"); t != "" {
		id, err := tenancy.ParseID(t)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "invalid query", map[string]string{"tenant": err.Error()})
			return
		}
		tenant = id
	}
	s.serveAudit(w, r, tenant)
}

func (s *Server) serveAudit(w http.ResponseWriter, r *http.Request, tenant tenancy.ID) {
	q := r.URL.Query()
	fe := fieldErrors{}
	aq := provision.AuditQuery{Tenant: tenant, Action: q.Get("action"), Limit: 50}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fe["limit"] = "must be an integer from 1 to 1000"
		}
		aq.Limit = n
	}
	if v := q.Get("before_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			fe["before_id"] = "must be a positive integer"
		}
		aq.BeforeID = n
	}
	if fe.bad(w) {
		return
	}
	evs, err := s.cfg.Provisioner.ListAudit(r.Context(), aq)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if evs == nil {
		evs = []provision.AuditEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": evs})
}
