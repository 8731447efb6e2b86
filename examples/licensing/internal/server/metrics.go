package server

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bulkhead-go/bulkhead/router"
)

// Metrics holds the server's Prometheus collectors. It is also the router's
// Tracer (checkouts, waits, releases, queries), so create it first and pass
// it as router.Config.Tracer.
type Metrics struct {
	Registry *prometheus.Registry

	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	checkouts  *prometheus.CounterVec
	wait       *prometheus.HistogramVec
	held       *prometheus.HistogramVec
	destroyed  *prometheus.CounterVec
	queries    *prometheus.CounterVec
	schemaSize *prometheus.GaugeVec
	schemaObjs *prometheus.GaugeVec
	authFail   *prometheus.CounterVec
	auditDrop  prometheus.Counter

	// acquires counts every checkout attempt (tests use it to prove a
	// refused request never reached the database).
	acquires atomic.Int64
}

var (
	_ router.Tracer        = (*Metrics)(nil)
	_ router.ReleaseTracer = (*Metrics)(nil)
	_ router.QueryTracer   = (*Metrics)(nil)
)

// NewMetrics registers the collectors on a new registry (with the Go and
// process collectors).
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licensing_http_requests_total", Help: "HTTP requests by tenant, route and status code.",
		}, []string{"tenant", "method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "licensing_http_request_duration_seconds", Help: "HTTP request latency by tenant and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"tenant", "route"}),
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_checkouts_total", Help: "Tenant connection checkouts by tenant and result (ok, switched, error).",
		}, []string{"tenant", "result"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkhead_checkout_wait_seconds", Help: "Time to a usable tenant connection (status lookup, slot, pool wait, switch).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5},
		}, []string{"tenant"}),
		held: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkhead_checkout_held_seconds", Help: "How long tenant connections were held.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5},
		}, []string{"tenant"}),
		destroyed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_connections_destroyed_total", Help: "Tenant connections closed on release instead of reused.",
		}, []string{"tenant"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_queries_total", Help: "Queries on tenant connections by tenant and result.",
		}, []string{"tenant", "result"}),
		schemaSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulkhead_tenant_schema_size_bytes", Help: "Total size of each tenant schema's tables and indexes (refreshed periodically).",
		}, []string{"tenant"}),
		schemaObjs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulkhead_tenant_schema_objects", Help: "Relations (tables, indexes, sequences, views) in each tenant schema.",
		}, []string{"tenant"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licensing_auth_failures_total", Help: "Rejected requests by reason.",
		}, []string{"reason"}),
		auditDrop: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licensing_audit_dropped_total", Help: "Asynchronous audit events dropped because the queue was full.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.checkouts, m.wait, m.held, m.destroyed, m.queries,
		m.schemaSize, m.schemaObjs, m.authFail, m.auditDrop)
	return m
}

// TraceAcquire implements router.Tracer.
func (m *Metrics) TraceAcquire(_ context.Context, d router.AcquireData) {
	m.acquires.Add(1)
	t := string(d.Tenant)
	res := "ok"
	switch {
	case d.Err != nil:
		res = "error"
	case d.Switched:
		res = "switched"
	}
	m.checkouts.WithLabelValues(t, res).Inc()
	m.wait.WithLabelValues(t).Observe(d.Wait.Seconds())
}

// TraceRelease implements router.ReleaseTracer.
func (m *Metrics) TraceRelease(d router.ReleaseData) {
	m.held.WithLabelValues(string(d.Tenant)).Observe(d.Held.Seconds())
	if d.Destroyed {
		m.destroyed.WithLabelValues(string(d.Tenant)).Inc()
	}
}

// TraceQuery implements router.QueryTracer.
func (m *Metrics) TraceQuery(_ context.Context, d router.QueryData) {
	res := "ok"
	if d.Err != nil && !errors.Is(d.Err, context.Canceled) {
		res = "error"
	}
	m.queries.WithLabelValues(string(d.Tenant), res).Inc()
}
