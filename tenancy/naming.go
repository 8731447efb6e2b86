package tenancy

import (
	"fmt"
)

// DefaultPrefix is the role-name prefix used when none is configured.
const DefaultPrefix = "bh"

// MaxPrefixLen bounds Naming.Prefix so that every derived name fits in
// PostgreSQL's 63-byte identifier limit: prefix + "_t_" + 26-byte key is at most
// 45 bytes.
const MaxPrefixLen = 16

// Naming derives the database names bulkhead uses from a prefix and, for
// per-tenant objects, a tenant key. Names are plain identifiers (lowercase ASCII,
// digits, '_'); callers still quote them with pgx.Identifier.Sanitize.
//
// With the default prefix "bh" and key k:
//
//	schema         bh_t_<k>     the tenant's tables
//	runtime role   bh_t_<k>     NOLOGIN NOINHERIT, DML on the schema only
//	login role     bh_l_<k>     LOGIN, member of the runtime role (TenantLogin mode)
//	owner role     bh_owner     NOLOGIN, owns every tenant schema and object
//
// Schemas and roles live in separate namespaces, so a tenant's schema and its
// runtime role share a name; it makes catalogs easy to read.
type Naming struct {
	// Prefix starts every role and schema name. Default: DefaultPrefix.
	Prefix string
}

// Validate reports whether the prefix is usable.
func (n Naming) Validate() error {
	p := n.prefix()
	if len(p) > MaxPrefixLen {
		return fmt.Errorf("tenancy: Naming.Prefix %q is longer than %d bytes", p, MaxPrefixLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0 || c == '_' && i > 0) {
			return fmt.Errorf("tenancy: Naming.Prefix %q must be lowercase letters, digits and '_', starting with a letter", p)
		}
	}
	return nil
}

func (n Naming) prefix() string {
	if n.Prefix == "" {
		return DefaultPrefix
	}
	return n.Prefix
}

// Schema is the name of the schema that holds tenant k's tables.
func (n Naming) Schema(k Key) string { return n.prefix() + "_t_" + string(k) }

// RuntimeRole is the name of tenant k's NOLOGIN runtime role.
func (n Naming) RuntimeRole(k Key) string { return n.prefix() + "_t_" + string(k) }

// LoginRole is the name of tenant k's LOGIN role (TenantLogin mode only).
func (n Naming) LoginRole(k Key) string { return n.prefix() + "_l_" + string(k) }

// OwnerRole is the NOLOGIN role that owns every tenant schema and object.
func (n Naming) OwnerRole() string { return n.prefix() + "_owner" }
