package router

// CorruptGatewayForTest makes the router expect another session_user on every
// pooled connection, so that the next switch's verification fails.
func CorruptGatewayForTest(r *Router) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.conns {
		st.gateway = "not_the_gateway"
	}
}

// FailResetForTest makes the SessionRole pipelined reset fail (instead of
// DISCARD ALL it runs a failing statement) until the returned func is called.
func FailResetForTest() (restore func()) {
	discardSQL = "SELECT 1/0"
	return func() { discardSQL = "DISCARD ALL" }
}
