package router

import (
	"container/list"
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// affinity keeps up to max idle connections out of the pool, each filed
// under the tenant its session serves, so that the tenant's next checkout
// gets one that needs no switch. When a checkout finds none for its tenant
// and the pool is exhausted, it takes the least recently parked connection
// of another tenant instead of waiting. Parked connections count as acquired
// in the pool's statistics.
type affinity struct {
	pool    *pgxpool.Pool
	poolMax int
	max     int

	mu      sync.Mutex
	byKey   map[tenancy.Key][]*list.Element
	lru     list.List // of *parked, oldest first
	held    int       // connections taken from the pool: checked out or parked
	waiting int       // checkouts blocked in pool.Acquire
}

type parked struct {
	pc  *pgxpool.Conn
	key tenancy.Key
}

func newAffinity(pool *pgxpool.Pool, max int) *affinity {
	return &affinity{pool: pool, poolMax: int(pool.Config().MaxConns), max: max, byKey: map[tenancy.Key][]*list.Element{}}
}

// acquire returns a connection for tenant k: one parked for k if any, else
// one from the pool, else (pool exhausted) another tenant's parked one.
func (a *affinity) acquire(ctx context.Context, k tenancy.Key) (*pgxpool.Conn, error) {
	a.mu.Lock()
	for {
		var el *list.Element
		if els := a.byKey[k]; len(els) > 0 {
			el = els[len(els)-1]
		} else if a.held >= a.poolMax && a.lru.Len() > 0 {
			el = a.lru.Front()
		} else {
			break
		}
		a.unpark(el)
		pc := el.Value.(*parked).pc
		if !pc.Conn().IsClosed() {
			a.mu.Unlock()
			return pc, nil
		}
		// Broken while parked (server restart, idle timeout): drop it.
		a.held--
		a.mu.Unlock()
		go func() { _ = pc.Hijack().Close(context.Background()) }()
		a.mu.Lock()
	}
	a.held++
	a.waiting++
	a.mu.Unlock()
	pc, err := a.pool.Acquire(ctx)
	a.mu.Lock()
	a.waiting--
	if err != nil {
		a.held--
	}
	a.mu.Unlock()
	return pc, err
}

// unpark removes el from both indexes; a.mu is held.
func (a *affinity) unpark(el *list.Element) {
	p := el.Value.(*parked)
	els := a.byKey[p.key]
	for i, e := range els {
		if e == el {
			els = append(els[:i], els[i+1:]...)
			break
		}
	}
	if len(els) == 0 {
		delete(a.byKey, p.key)
	} else {
		a.byKey[p.key] = els
	}
	a.lru.Remove(el)
}

// release parks pc for tenant k (empty: the session's state is unknown, so
// it goes back to the pool), or returns it to the pool when a checkout is
// waiting there.
func (a *affinity) release(pc *pgxpool.Conn, k tenancy.Key) {
	a.mu.Lock()
	if k == "" || a.waiting > 0 || a.max <= 0 {
		a.held--
		a.mu.Unlock()
		pc.Release()
		return
	}
	var evict *pgxpool.Conn
	if a.lru.Len() >= a.max {
		el := a.lru.Front()
		a.unpark(el)
		evict = el.Value.(*parked).pc
		a.held--
	}
	el := a.lru.PushBack(&parked{pc: pc, key: k})
	a.byKey[k] = append(a.byKey[k], el)
	a.mu.Unlock()
	if evict != nil {
		evict.Release()
	}
}

// destroyed accounts for a connection that was hijacked and closed.
func (a *affinity) destroyed() {
	a.mu.Lock()
	a.held--
	a.mu.Unlock()
}

// drain returns every parked connection to the pool.
func (a *affinity) drain() {
	a.mu.Lock()
	var pcs []*pgxpool.Conn
	for el := a.lru.Front(); el != nil; el = el.Next() {
		pcs = append(pcs, el.Value.(*parked).pc)
	}
	a.lru.Init()
	a.byKey = map[tenancy.Key][]*list.Element{}
	a.held -= len(pcs)
	a.max = 0
	a.mu.Unlock()
	for _, pc := range pcs {
		pc.Release()
	}
}

func (a *affinity) parkedLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}
