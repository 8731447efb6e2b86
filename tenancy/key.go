package tenancy

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// KeyLen is the length of every tenant key, in bytes.
const KeyLen = 26

// keyEncoding is lowercase RFC 4648 base32 without padding: 26 characters carry
// 130 bits, of which the 128 random bits of a key use all but two.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Key is a tenant's opaque, fixed-length database key: 26 characters of
// lowercase base32 drawn from 128 random bits. Schema and role names derive from
// it (see Naming), never from the tenant's ID.
type Key string

// NewKey returns a fresh random key.
func NewKey() Key {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand.Read never returns an error on supported platforms.
		panic("tenancy: reading random bytes: " + err.Error())
	}
	return Key(keyEncoding.EncodeToString(b[:]))
}

// Validate reports whether k has the shape of a key.
func (k Key) Validate() error {
	if len(k) != KeyLen {
		return fmt.Errorf("tenancy: key %q is %d bytes long, want %d", string(k), len(k), KeyLen)
	}
	if strings.Trim(string(k), "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return fmt.Errorf("tenancy: key %q has characters outside lowercase base32", string(k))
	}
	return nil
}

// String returns the key as a string.
func (k Key) String() string { return string(k) }
