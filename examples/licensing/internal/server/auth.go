package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// Issuer is the "iss" every token must carry.
const Issuer = "bulkhead-licensing"

// MaxTokenTTL is the longest a token may live: "exp" must be at most this far
// in the future (measured when the token is presented).
const MaxTokenTTL = 24 * time.Hour

// Claims are the claims of an access token. Tenant tokens carry the tenant ID
// in "tid" and are signed with that tenant's key; operator tokens carry no
// "tid", the role "operator", and are signed with the platform key.
type Claims struct {
	Tenant string   `json:"tid,omitempty"`
	Roles  []string `json:"roles"`
	jwt.RegisteredClaims
}

// Keys derives signing keys. Every key is HMAC-SHA256(master, label), so the
// server stores one secret and nothing per tenant:
//
//	platform key: HMAC(master, "bulkhead-licensing/platform/v1")
//	tenant key:   HMAC(master, "bulkhead-licensing/tenant/v1/" + tenant ID)
//
// A token minted for tenant A is signed with A's key; presented as tenant B
// (tid changed to B) its signature no longer verifies under B's key. Keys
// derive from the tenant ID, not from the catalog, so a signature is checked
// in memory before anything reaches the database. Consequences, documented
// in the README: rotating the master secret invalidates every token; a tenant
// purged and re-created under the same ID accepts the old ID's tokens until
// they expire (at most MaxTokenTTL).
type Keys struct{ master []byte }

// NewKeys returns the key deriver for master, which must be at least 32 bytes.
func NewKeys(master []byte) (*Keys, error) {
	if len(master) < 32 {
		return nil, fmt.Errorf("the master secret is %d bytes, it must be at least 32", len(master))
	}
	return &Keys{master: append([]byte(nil), master...)}, nil
}

func (k *Keys) derive(label string) []byte {
	m := hmac.New(sha256.New, k.master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Platform returns the operators' signing key.
func (k *Keys) Platform() []byte { return k.derive("bulkhead-licensing/platform/v1") }

// Tenant returns tenant id's signing key.
func (k *Keys) Tenant(id tenancy.ID) []byte {
	return k.derive("bulkhead-licensing/tenant/v1/" + string(id))
}

// MintOpts describe a token to mint.
type MintOpts struct {
	// Tenant is the tenant of a tenant token; empty mints an operator token.
	Tenant  tenancy.ID
	Subject string
	Roles   []Role
	// TTL is the token's lifetime, at most MaxTokenTTL. Default: 1h.
	TTL time.Duration
}

// Mint returns a signed HS256 token.
func (k *Keys) Mint(o MintOpts) (string, error) {
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.TTL < 0 || o.TTL > MaxTokenTTL {
		return "", fmt.Errorf("token TTL %s is not within (0, %s]", o.TTL, MaxTokenTTL)
	}
	if o.Subject == "" {
		return "", errors.New("token subject is empty")
	}
	key := k.Platform()
	if o.Tenant != "" {
		if err := o.Tenant.Validate(); err != nil {
			return "", err
		}
		key = k.Tenant(o.Tenant)
	}
	now := time.Now()
	c := Claims{Tenant: string(o.Tenant), RegisteredClaims: jwt.RegisteredClaims{
		Issuer: Issuer, Subject: o.Subject,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(o.TTL)),
	}}
	for _, r := range o.Roles {
		c.Roles = append(c.Roles, string(r))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	// Tenant is the tenant the token was issued for; empty for operators.
	Tenant   tenancy.ID
	Roles    []Role
	Operator bool
}

// Actor is how the audit log names the principal.
func (p *Principal) Actor() string {
	if p.Operator {
		return "operator:" + p.Subject
	}
	return string(p.Tenant) + ":" + p.Subject
}

// authError is a rejected token; Reason is safe to show the caller.
type authError struct {
	Reason string
	err    error
}

func (e *authError) Error() string { return e.Reason + ": " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// verify checks a compact JWT: HS256 only (so "none" and RS/HS key confusion
// are refused by the parser before any key is used), our issuer, "exp"
// present and at most MaxTokenTTL ahead, a subject, a valid tenant ID when
// "tid" is set, and known roles. It does no I/O.
func (k *Keys) verify(raw string, now time.Time) (*Principal, error) {
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		cl := t.Claims.(*Claims)
		if cl.Tenant == "" {
			return k.Platform(), nil
		}
		id := tenancy.ID(cl.Tenant)
		if err := id.Validate(); err != nil {
			return nil, err
		}
		return k.Tenant(id), nil
	})
	if err != nil {
		return nil, &authError{Reason: "invalid token", err: err}
	}
	if c.ExpiresAt.Sub(now) > MaxTokenTTL+time.Minute {
		return nil, &authError{Reason: "invalid token", err: fmt.Errorf("exp is more than %s ahead", MaxTokenTTL)}
	}
	if c.Subject == "" {
		return nil, &authError{Reason: "invalid token", err: errors.New("no subject")}
	}
	pr := &Principal{Subject: c.Subject, Tenant: tenancy.ID(c.Tenant)}
	for _, r := range c.Roles {
		role := Role(r)
		switch {
		case role == RoleOperator && c.Tenant == "":
			pr.Operator = true
		case c.Tenant != "" && (role == RoleAdmin || role == RoleManager || role == RoleUser || role == RoleViewer):
		default:
			return nil, &authError{Reason: "invalid token", err: fmt.Errorf("role %q is not allowed on this token", r)}
		}
		pr.Roles = append(pr.Roles, role)
	}
	if c.Tenant == "" && !pr.Operator {
		return nil, &authError{Reason: "invalid token", err: errors.New("a platform token must carry the operator role")}
	}
	return pr, nil
}

// unverifiedSubject reads tid and sub from a token without verifying it, to
// account failed attempts to a subject. Nothing else is trusted from it.
func unverifiedSubject(raw string) string {
	var c Claims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil || c.Subject == "" {
		return ""
	}
	if len(c.Subject) > 200 || len(c.Tenant) > tenancy.MaxIDLen {
		return ""
	}
	return c.Tenant + "/" + c.Subject
}

// lockout counts failed attempts per subject, in memory: after Threshold
// failures within Window the subject is refused, valid token or not, for
// Cooldown. State is per process and lost on restart; a fleet of servers
// needs a shared store (e.g. Redis) instead. Anyone can lock a subject out by
// sending bad tokens in its name; that is the price of every lockout scheme.
type lockout struct {
	threshold int
	window    time.Duration
	cooldown  time.Duration

	mu sync.Mutex
	m  map[string]*lockState
}

type lockState struct {
	fails       int
	first       time.Time
	lockedUntil time.Time
}

func newLockout(threshold int, window, cooldown time.Duration) *lockout {
	return &lockout{threshold: threshold, window: window, cooldown: cooldown, m: map[string]*lockState{}}
}

// locked reports until when subject is locked out, if it is.
func (l *lockout) locked(subject string, now time.Time) (time.Time, bool) {
	if subject == "" {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[subject]
	if s == nil || !now.Before(s.lockedUntil) {
		return time.Time{}, false
	}
	return s.lockedUntil, true
}

// fail records a failure and reports whether it locked the subject.
func (l *lockout) fail(subject string, now time.Time) bool {
	if subject == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 100_000 {
		// Bound memory: forget subjects whose state has lapsed.
		for k, s := range l.m {
			if now.Sub(s.first) > l.window && !now.Before(s.lockedUntil) {
				delete(l.m, k)
			}
		}
	}
	s := l.m[subject]
	if s == nil || now.Sub(s.first) > l.window {
		s = &lockState{first: now}
		l.m[subject] = s
	}
	s.fails++
	if s.fails >= l.threshold {
		s.lockedUntil = now.Add(l.cooldown)
		s.fails = 0
		s.first = now
		return true
	}
	return false
}

// succeed clears a subject's failures.
func (l *lockout) succeed(subject string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.m[subject]; s != nil && s.lockedUntil.IsZero() {
		delete(l.m, subject)
	}
}
