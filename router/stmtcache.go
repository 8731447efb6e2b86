package router

import (
	"container/list"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// The statement cache of DB (oneshot.go) keeps, on each gateway connection,
// server-side prepared statements under names of its own, one per tenant and
// SQL text. Keying by tenant is what makes it both fast and safe:
//
//   - PostgreSQL resolves a statement's table names when it is prepared,
//     under the search_path in force then, and re-plans it whenever it runs
//     under another search_path. One statement shared by every tenant would
//     be re-planned on nearly every use when tenants share connections; a
//     statement per tenant is planned under its tenant's search_path only
//     and keeps its plan.
//   - A statement is only ever executed for the tenant it was prepared for,
//     after the switch to that tenant's role, so it can only reach what that
//     role may (PostgreSQL checks privileges on every execution).
//
// The cache is bounded per connection (Config.StatementCacheSize); the least
// recently used statement is closed on the server in the same round trip
// that prepares a new one. A full session reset (DISCARD ALL, DEALLOCATE
// ALL) forgets everything, because the server has.

// The router's own named statements, prepared once per session.
const (
	stmtResetAll  = "bulkhead_reset_all"
	stmtResetRole = "bulkhead_reset_role"
	stmtSwitch    = "bulkhead_switch"
	stmtSwitchTx  = "bulkhead_switch_local"
)

// stmtKey identifies a cached statement: a tenant and the SQL text it runs.
type stmtKey struct {
	tenant tenancy.Key
	sql    string
}

// stmtCache is one connection's cache; it is used by the connection's
// holder only, so it needs no lock.
type stmtCache struct {
	max   int
	byKey map[stmtKey]*list.Element // values are *pgconn.StatementDescription
	keys  map[*pgconn.StatementDescription]stmtKey
	lru   *list.List // front: most recently used
	next  uint64
	// own records which of the router's own statements the session has.
	own map[string]bool
}

func newStmtCache(max int) *stmtCache {
	return &stmtCache{max: max, byKey: map[stmtKey]*list.Element{}, keys: map[*pgconn.StatementDescription]stmtKey{},
		lru: list.New(), own: map[string]bool{}}
}

// get returns the description of tenant's statement for sql, or nil.
func (s *stmtCache) get(tenant tenancy.Key, sql string) *pgconn.StatementDescription {
	e, ok := s.byKey[stmtKey{tenant, sql}]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(e)
	return e.Value.(*pgconn.StatementDescription)
}

// name returns a fresh statement name.
func (s *stmtCache) name() string {
	s.next++
	return "bulkhead_s" + strconv.FormatUint(s.next, 10)
}

// victim returns the statement to close before one more is added, or "".
func (s *stmtCache) victim() string {
	if s.lru.Len() < s.max {
		return ""
	}
	return s.lru.Back().Value.(*pgconn.StatementDescription).Name
}

// add records a statement the server confirmed it prepared.
func (s *stmtCache) add(tenant tenancy.Key, sql string, sd *pgconn.StatementDescription) {
	k := stmtKey{tenant, sql}
	if e, ok := s.byKey[k]; ok {
		s.drop(e)
	}
	s.byKey[k] = s.lru.PushFront(sd)
	s.keys[sd] = k
}

// closed records that the server closed the statement called name.
func (s *stmtCache) closed(name string) {
	for e := s.lru.Back(); e != nil; e = e.Prev() {
		if e.Value.(*pgconn.StatementDescription).Name == name {
			s.drop(e)
			return
		}
	}
}

func (s *stmtCache) drop(e *list.Element) {
	sd := s.lru.Remove(e).(*pgconn.StatementDescription)
	delete(s.byKey, s.keys[sd])
	delete(s.keys, sd)
}

// clear forgets every statement, the router's own included: the server has
// just deallocated them all.
func (s *stmtCache) clear() {
	clear(s.byKey)
	clear(s.keys)
	clear(s.own)
	s.lru.Init()
}

// len is the number of cached tenant statements.
func (s *stmtCache) len() int { return s.lru.Len() }
