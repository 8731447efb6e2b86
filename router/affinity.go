package router

import (
	"container/list"
	"context"
	"sync"
	"time"

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
	// queue holds checkouts waiting for a connection once every connection
	// is taken: a released connection goes to a waiter of the tenant it
	// serves if there is one (no switch), else to the oldest waiter.
	queue   list.List     // of *waiter, oldest first
	handOff time.Duration // handOffAge; tests change it
}

// waiter is a checkout blocked on a full pool. It receives a connection, or
// nil meaning "capacity was freed: acquire from the pool".
type waiter struct {
	key   tenancy.Key
	since time.Time
	ch    chan *pgxpool.Conn // buffered, 1
	el    *list.Element
}

// handOffAge bounds how long the oldest waiter lets waiters of other tenants
// go first: past it, the next released connection is its, whatever tenant
// the connection served. It is the most a checkout's wait grows for the sake
// of fewer switches.
const handOffAge = 25 * time.Millisecond

type parked struct {
	pc  *pgxpool.Conn
	key tenancy.Key
}

func newAffinity(pool *pgxpool.Pool, max int) *affinity {
	return &affinity{pool: pool, poolMax: int(pool.Config().MaxConns), max: max, byKey: map[tenancy.Key][]*list.Element{}, handOff: handOffAge}
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
	if a.held >= a.poolMax && a.max > 0 {
		// Every connection is checked out: wait for one to be released,
		// preferably one that already serves k.
		w := &waiter{key: k, since: time.Now(), ch: make(chan *pgxpool.Conn, 1)}
		w.el = a.queue.PushBack(w)
		a.mu.Unlock()
		select {
		case pc := <-w.ch:
			if pc != nil {
				return pc, nil
			}
			return a.acquire(ctx, k) // capacity freed
		case <-ctx.Done():
			a.mu.Lock()
			if w.el != nil {
				a.queue.Remove(w.el)
				a.mu.Unlock()
				return nil, ctx.Err()
			}
			a.mu.Unlock()
			// Handed something while giving up: pass it on.
			if pc := <-w.ch; pc != nil {
				a.release(pc, "")
			} else {
				a.wakeOne()
			}
			return nil, ctx.Err()
		}
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
	if w := a.pick(k); w != nil {
		a.mu.Unlock()
		w.ch <- pc // stays held: it changes hands
		return
	}
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

// pick removes and returns the waiter a connection serving k goes to: the
// oldest waiter if it has waited handOffAge, else the oldest waiter for k,
// else the oldest; nil when nobody waits. a.mu is held.
func (a *affinity) pick(k tenancy.Key) *waiter {
	front := a.queue.Front()
	if front == nil {
		return nil
	}
	w := front.Value.(*waiter)
	if k != "" && time.Since(w.since) < a.handOff {
		for e := front; e != nil; e = e.Next() {
			if e.Value.(*waiter).key == k {
				w = e.Value.(*waiter)
				break
			}
		}
	}
	a.queue.Remove(w.el)
	w.el = nil
	return w
}

// destroyed accounts for a connection that was hijacked and closed, and
// lets a waiter take the freed capacity from the pool.
func (a *affinity) destroyed() {
	a.mu.Lock()
	a.held--
	a.mu.Unlock()
	a.wakeOne()
}

// wakeOne tells the oldest waiter, if any, to acquire from the pool.
func (a *affinity) wakeOne() {
	a.mu.Lock()
	w := a.pick("")
	a.mu.Unlock()
	if w != nil {
		w.ch <- nil
	}
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
	var ws []*waiter
	for e := a.queue.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		w.el = nil
		ws = append(ws, w)
	}
	a.queue.Init()
	a.mu.Unlock()
	for _, pc := range pcs {
		pc.Release()
	}
	for _, w := range ws {
		w.ch <- nil // acquire from the pool (which is closing)
	}
}

func (a *affinity) parkedLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lru.Len()
}
