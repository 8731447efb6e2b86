package router

import (
	"context"
	"sync"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// slots caps concurrent checkouts per tenant. Entries exist only while a
// tenant has checkouts or waiters, so memory follows active tenants, not all
// tenants.
type slots struct {
	mu sync.Mutex
	m  map[tenancy.Key]*slot
}

type slot struct {
	sem  chan struct{}
	refs int // holders + waiters
}

func newSlots() *slots { return &slots{m: map[tenancy.Key]*slot{}} }

// acquire waits for one of limit slots of tenant k and returns its release.
// A limit change applies once the tenant has no checkouts.
func (s *slots) acquire(ctx context.Context, k tenancy.Key, limit int) (func(), error) {
	s.mu.Lock()
	sl, ok := s.m[k]
	if !ok {
		sl = &slot{sem: make(chan struct{}, limit)}
		s.m[k] = sl
	}
	sl.refs++
	s.mu.Unlock()

	select {
	case sl.sem <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-sl.sem
				s.unref(k, sl)
			})
		}, nil
	case <-ctx.Done():
		s.unref(k, sl)
		return nil, ctx.Err()
	}
}

func (s *slots) unref(k tenancy.Key, sl *slot) {
	s.mu.Lock()
	sl.refs--
	if sl.refs == 0 {
		delete(s.m, k)
	}
	s.mu.Unlock()
}

func (s *slots) busy() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
