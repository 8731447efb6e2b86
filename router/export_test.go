package router

import "time"

// CorruptGatewayForTest makes the router expect another session_user on every
// pooled connection, so that the next switch's verification fails.
func CorruptGatewayForTest(r *Router) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.conns {
		st.gateway = "not_the_gateway"
	}
}

// FailResetForTest makes the SessionRole pipelined resets fail (instead of
// DISCARD ALL, and of RESET ALL on sessions that prepare it from now on, they
// run a failing statement) until the returned func is called.
func FailResetForTest() (restore func()) {
	discardSQL, lightResetSQL = "SELECT 1/0", "SELECT 1/0"
	return func() { discardSQL, lightResetSQL = "DISCARD ALL", "RESET ALL" }
}

// SetHandOffAgeForTest changes how long r's oldest waiter lets same-tenant
// waiters go first (r must have Config.Affinity).
func SetHandOffAgeForTest(r *Router, d time.Duration) {
	r.aff.mu.Lock()
	r.aff.handOff = d
	r.aff.mu.Unlock()
}
