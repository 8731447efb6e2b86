package router

import (
	"context"
	"time"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Tracer is told about every checkout. A Tracer may also implement
// ReleaseTracer and QueryTracer; the router checks once, at New.
type Tracer interface {
	TraceAcquire(ctx context.Context, d AcquireData)
}

// ReleaseTracer is told when a checkout ends.
type ReleaseTracer interface {
	TraceRelease(d ReleaseData)
}

// QueryTracer is told about every query run on a tenant's connection.
type QueryTracer interface {
	TraceQuery(ctx context.Context, d QueryData)
}

// AcquireData describes one checkout. New fields may be added.
type AcquireData struct {
	Tenant tenancy.ID
	// Wait is the time from the call to a usable connection (or the error):
	// status lookup, tenant slot, pool wait and the role switch.
	Wait time.Duration
	// Switched says the connection changed tenant (and was reset) on checkout.
	Switched bool
	Err      error
}

// ReleaseData describes the end of a checkout.
type ReleaseData struct {
	Tenant tenancy.ID
	Held   time.Duration
	// Destroyed says the connection was closed instead of returned to the
	// pool (broken, or left inside a transaction).
	Destroyed bool
}

// QueryData describes one query.
type QueryData struct {
	Tenant   tenancy.ID
	SQL      string
	Duration time.Duration
	Err      error
}
