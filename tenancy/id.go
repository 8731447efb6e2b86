package tenancy

import (
	"fmt"
)

// MaxIDLen is the longest tenant ID accepted, in bytes.
const MaxIDLen = 63

// ID is a tenant's external identifier, as the business names it (a brand slug,
// a UUID). Call Validate (or ParseID) before trusting one that came from outside.
type ID string

// ParseID validates s and returns it as an ID.
func ParseID(s string) (ID, error) {
	id := ID(s)
	if err := id.Validate(); err != nil {
		return "", err
	}
	return id, nil
}

// Validate reports whether id is a well-formed tenant ID: 1 to MaxIDLen bytes of
// lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter or a
// digit. The error is an *InvalidIDError.
func (id ID) Validate() error {
	switch {
	case len(id) == 0:
		return &InvalidIDError{ID: string(id), Reason: "is empty"}
	case len(id) > MaxIDLen:
		return &InvalidIDError{ID: string(id), Reason: fmt.Sprintf("is %d bytes long, the limit is %d", len(id), MaxIDLen)}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return &InvalidIDError{ID: string(id), Reason: fmt.Sprintf("has %q at byte %d; allowed are a-z, 0-9 and, after the first byte, '.', '_', '-'", rune(c), i)}
		}
	}
	return nil
}

// String returns the ID as a string.
func (id ID) String() string { return string(id) }
