package router

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// budget is TenantLogin's global connection budget: one token per
// connection that exists, across every tenant pool. Tokens are granted in
// FIFO order, so a tenant that keeps asking cannot starve one that waits.
type budget struct {
	mu      sync.Mutex
	max     int
	used    int
	high    int // high-water mark of used
	waiters []*budgetWaiter
	// onRetry, when set, runs before a waiter's periodic retry.
	onRetry func()
}

type budgetWaiter struct {
	ch      chan struct{} // closed when granted
	granted bool
}

func newBudget(max int) *budget { return &budget{max: max} }

// shortRetry is how often a budget waiter asks again for room.
const shortRetry = 100 * time.Millisecond

// retry calls short through b.onRetry when set (the pools reset their
// estimate of connections being freed first).
func (b *budget) retry(short func()) {
	if b.onRetry != nil {
		b.onRetry()
	}
	short()
}

// errWoken: budget.acquire gave up its place because wake fired.
var errWoken = errors.New("woken")

// acquire takes a token, waiting in FIFO order until ctx is done or wake
// fires (errWoken). short is called (outside the lock) when the caller has
// to wait, so that idle connections can be closed to make room.
func (b *budget) acquire(ctx context.Context, short func(), wake <-chan struct{}) error {
	b.mu.Lock()
	if b.used < b.max && len(b.waiters) == 0 {
		b.take()
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{ch: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	if short != nil {
		short()
	}
	// While waiting, ask again now and then: room made for others may have
	// gone to them, or an estimate of what is being freed may be stale.
	var tick <-chan time.Time
	if short != nil {
		t := time.NewTicker(shortRetry)
		defer t.Stop()
		tick = t.C
	}
	var err error
wait:
	for {
		select {
		case <-w.ch:
			return nil
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-wake:
			err = errWoken
			break wait
		case <-tick:
			b.retry(short)
		}
	}
	b.mu.Lock()
	if w.granted {
		// Granted while giving up: pass the token on.
		b.mu.Unlock()
		b.release()
		return err
	}
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	b.mu.Unlock()
	return err
}

// tryAcquire takes a token if more than reserve are free and nobody waits.
func (b *budget) tryAcquire(reserve int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used < b.max-reserve && len(b.waiters) == 0 {
		b.take()
		return true
	}
	return false
}

func (b *budget) take() {
	b.used++
	if b.used > b.high {
		b.high = b.used
	}
}

// release returns a token: to the first waiter, or to the budget.
func (b *budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		w.granted = true
		close(w.ch)
		return
	}
	b.used--
}

func (b *budget) stat() (used, high, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.high, len(b.waiters)
}

// ticket carries tokens reserved by an acquirer to the dial that the pool
// makes for it (through the context, whose values pgxpool passes on to the
// connection constructor). A dial that fails, or a connection that closes
// while the acquirer still waits, gives its token back to the ticket; once
// the acquirer is done (finish), tokens go back to the budget.
type ticket struct {
	b        *budget
	mu       sync.Mutex
	held     int
	finished bool
}

type ticketKey struct{}

// take moves one of the ticket's tokens to the caller.
func (t *ticket) take() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held > 0 {
		t.held--
		return true
	}
	return false
}

// put gives a token back: to the ticket while its acquirer waits, else to
// the budget.
func (t *ticket) put() {
	t.mu.Lock()
	if !t.finished {
		t.held++
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.b.release()
}

// finish ends the acquirer's wait; unused tokens go back to the budget.
func (t *ticket) finish() {
	t.mu.Lock()
	t.finished = true
	held := t.held
	t.held = 0
	t.mu.Unlock()
	for ; held > 0; held-- {
		t.b.release()
	}
}

// drainTimeout bounds how long closing a connection waits for the server to
// close its end.
const drainTimeout = 2 * time.Second

// budgetConn is a socket counted against the budget. Close waits (at most
// drainTimeout) for the server to close its end, which PostgreSQL does only
// when the backend has exited, so that the budget counts backends, not
// client sockets: a token is reused only once the server has really freed
// the connection.
type budgetConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *budgetConn) Close() error {
	var err error
	c.once.Do(func() {
		if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(drainTimeout))
		_, _ = io.Copy(io.Discard, c.Conn)
		err = c.Conn.Close()
		c.done()
	})
	return err
}
