package tenancy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Credentials supplies the password of a tenant's login role (the router's
// TenantLogin mode). The provisioner sets it on the role; the router logs in
// with it. Both must be configured with the same Credentials.
type Credentials interface {
	// LoginPassword returns the password of the login role of the tenant
	// whose key is k.
	LoginPassword(ctx context.Context, k Key) (string, error)
}

// MinSecretLen is the shortest master secret NewDerivedCredentials accepts,
// in bytes.
const MinSecretLen = 32

// DerivedCredentials derives every tenant's login password from one master
// secret: the password is hex(HMAC-SHA256(secret, key)), 64 characters. No
// password is stored anywhere; whoever holds the secret and a tenant's key
// can log in as that tenant, so keep the secret like a database superuser
// password. Rotating the secret means re-setting every login role's password
// (provision.Provisioner.EnsureLogin) with the new one.
type DerivedCredentials struct {
	secret []byte
}

// NewDerivedCredentials returns Credentials derived from secret, which must
// be at least MinSecretLen bytes of random data. The secret is copied.
func NewDerivedCredentials(secret []byte) (*DerivedCredentials, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("tenancy: the login master secret is %d bytes long, need at least %d random bytes", len(secret), MinSecretLen)
	}
	return &DerivedCredentials{secret: append([]byte(nil), secret...)}, nil
}

// LoginPassword returns hex(HMAC-SHA256(secret, k)).
func (d *DerivedCredentials) LoginPassword(_ context.Context, k Key) (string, error) {
	if d == nil || len(d.secret) == 0 {
		return "", errors.New("tenancy: DerivedCredentials has no secret (use NewDerivedCredentials)")
	}
	if err := k.Validate(); err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, d.secret)
	m.Write([]byte(k))
	return hex.EncodeToString(m.Sum(nil)), nil
}
