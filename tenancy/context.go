package tenancy

import "context"

type ctxKey int

const (
	tenantKey ctxKey = iota
	actorKey
)

// WithTenant returns a copy of ctx carrying tenant id. The router's
// AcquireFromContext and the reference server's middleware read it back.
func WithTenant(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, tenantKey, id)
}

// FromContext returns the tenant carried by ctx, if any.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(tenantKey).(ID)
	return id, ok && id != ""
}

// MustFromContext returns the tenant carried by ctx or ErrNoTenant.
func MustFromContext(ctx context.Context) (ID, error) {
	id, ok := FromContext(ctx)
	if !ok {
		return "", ErrNoTenant
	}
	return id, nil
}

// WithActor returns a copy of ctx naming who acts (a user, an operator, a job);
// provisioning records it in the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey, actor)
}

// ActorFromContext returns the actor carried by ctx, or "system".
func ActorFromContext(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey).(string); ok && a != "" {
		return a
	}
	return "system"
}
