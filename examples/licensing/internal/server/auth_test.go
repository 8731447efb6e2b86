package server

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func signHS(t *testing.T, key []byte, c jwt.Claims) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	require.NoError(t, err)
	return tok
}

func claims(tenant, sub string, ttl time.Duration, roles ...string) *Claims {
	now := time.Now()
	return &Claims{Tenant: tenant, Roles: roles, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: Issuer, Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
}

func TestAuthRejections(t *testing.T) {
	t.Parallel()
	// Many failures for one subject here; the lockout has its own test.
	e := setup(t, &setupOpts{threshold: 1000})
	e.fixtures("tenant-a", e.token("tenant-a", "seed", RoleAdmin), "A")
	keyA, keyB := e.keys.Tenant("tenant-a"), e.keys.Tenant("tenant-b")

	valid := e.token("tenant-a", "alice", RoleViewer)
	parts := strings.Split(valid, ".")
	// Same payload with tid changed to tenant-b, original signature kept.
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, json.Unmarshal(raw, &payload))
	payload["tid"] = "tenant-b"
	tampered := parts[0] + "." + b64(payload) + "." + parts[2]
	none := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	rsKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rs, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("tenant-a", "alice", time.Hour, "viewer")).SignedString(rsKey)
	require.NoError(t, err)
	noExp := claims("tenant-a", "alice", time.Hour, "viewer")
	noExp.ExpiresAt = nil

	cases := map[string]string{
		"signed with tenant B's key":  signHS(t, keyB, claims("tenant-a", "alice", time.Hour, "viewer")),
		"tampered tenant claim":       tampered,
		"alg none":                    none,
		"RS256":                       rs,
		"expired":                     signHS(t, keyA, claims("tenant-a", "alice", -time.Minute, "viewer")),
		"no exp":                      signHS(t, keyA, noExp),
		"exp beyond 24h":              signHS(t, keyA, claims("tenant-a", "alice", 48*time.Hour, "viewer")),
		"wrong issuer":                signHS(t, keyA, &Claims{Tenant: "tenant-a", Roles: []string{"viewer"}, RegisteredClaims: jwt.RegisteredClaims{Issuer: "x", Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}),
		"operator role on tenant key": signHS(t, keyA, claims("tenant-a", "alice", time.Hour, "operator")),
		"platform token, no operator": signHS(t, e.keys.Platform(), claims("", "ops", time.Hour, "admin")),
		"platform key used as tenant": signHS(t, e.keys.Platform(), claims("tenant-a", "alice", time.Hour, "admin")),
		"tenant key used as platform": signHS(t, keyA, claims("", "ops", time.Hour, "operator")),
		"invalid tenant id":           signHS(t, keyA, claims("Tenant A", "alice", time.Hour, "viewer")),
		"garbage":                     "not.a.jwt",
	}
	before := e.m.acquires.Load()
	for name, tok := range cases {
		r := e.do("GET", "/api/v1/brands", tok, nil)
		require.Equal(t, 401, r.Code, name+": "+r.Raw)
		require.Equal(t, "invalid_token", r.str("error"), name)
	}
	r := e.must(401, e.do("GET", "/api/v1/brands", "", nil))
	require.Equal(t, "unauthenticated", r.str("error"))

	// Valid tokens without a usable tenant context: 403, JSON.
	e.must(403, e.do("GET", "/api/v1/brands", e.operator(), nil))
	e.must(403, e.do("GET", "/api/v1/brands", e.operator(), nil, "X-Tenant", "Not Valid"))
	e.must(403, e.do("GET", "/api/v1/brands", valid, nil, "X-Tenant", "tenant-b"))
	e.must(403, e.do("GET", "/api/v1/tenants", valid, nil))
	require.Equal(t, before, e.m.acquires.Load(), "a rejected request reached the router")

	// A validly signed token for a tenant that does not exist, or is suspended.
	ghost := e.token("ghost", "g", RoleAdmin)
	require.Equal(t, "tenant_context", e.must(403, e.do("GET", "/api/v1/brands", ghost, nil)).str("error"))
	e.must(200, e.do("POST", "/api/v1/tenants/tenant-b/suspend", e.operator(), nil))
	e.must(403, e.do("GET", "/api/v1/brands", e.token("tenant-b", "bob", RoleAdmin), nil))

	// The valid token still works, and each failure was audited.
	e.must(200, e.do("GET", "/api/v1/brands", valid, nil))
	require.Eventually(t, func() bool { return len(e.audit("", "auth.failure")) >= len(cases) }, 10*time.Second, 20*time.Millisecond)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	e := setup(t, &setupOpts{lockout: 2 * time.Second})
	good := e.token("tenant-a", "alice", RoleViewer)
	bad := signHS(t, e.keys.Tenant("tenant-b"), claims("tenant-a", "alice", time.Hour, "viewer"))
	for range 4 {
		e.must(401, e.do("GET", "/api/v1/brands", bad, nil))
	}
	e.must(200, e.do("GET", "/api/v1/brands", good, nil)) // 4 failures: not yet locked; success resets
	for range 5 {
		e.must(401, e.do("GET", "/api/v1/brands", bad, nil))
	}
	r := e.must(429, e.do("GET", "/api/v1/brands", good, nil))
	require.Equal(t, "locked_out", r.str("error"))
	require.NotEmpty(t, r.Hdr.Get("Retry-After"))
	// Another subject of the same tenant is unaffected.
	e.must(200, e.do("GET", "/api/v1/brands", e.token("tenant-a", "bob", RoleViewer), nil))
	// After the cooling-off period the subject may try again.
	require.Eventually(t, func() bool { return e.do("GET", "/api/v1/brands", good, nil).Code == 200 }, 10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, ev := range e.audit("tenant-a", "auth.failure") {
			var d map[string]any
			_ = json.Unmarshal(ev.Detail, &d)
			if d["locked_out"] == true {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
}
