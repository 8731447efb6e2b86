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
