package server

import (
	"fmt"
	"slices"
	"strings"
)

// Role is a tenant-scoped role carried in a token's "roles" claim.
type Role string

// The tenant roles, from most to least privileged, and the platform role.
const (
	RoleAdmin   Role = "admin"
	RoleManager Role = "manager"
	RoleUser    Role = "user"
	RoleViewer  Role = "viewer"
	// RoleOperator is the platform operator's role. It is only honoured on a
	// token signed with the platform key; on a tenant's token it is rejected.
	RoleOperator Role = "operator"
)

// TenantRoles lists the roles a tenant token may carry.
var TenantRoles = []Role{RoleAdmin, RoleManager, RoleUser, RoleViewer}

// Permission is one thing a request may do inside a tenant.
type Permission string

// The permissions of the licensing API.
const (
	PermRead            Permission = "licensing:read"
	PermAgreementsWrite Permission = "agreements:write"
	PermCatalogWrite    Permission = "brands+licensees:write"
	PermApprovalsDecide Permission = "approvals:decide"
	PermDelete          Permission = "licensing:delete"
	PermAuditRead       Permission = "audit:read"
	// PermTenantsManage is the management API; only platform operators hold it.
	PermTenantsManage Permission = "tenants:manage"
)

// permissionMatrix is the one place RBAC is defined: which roles hold which
// permission. The README's matrix is generated from it (rbacMarkdown) and a
// test keeps the two identical. Platform operators acting on a tenant (with
// X-Tenant) hold every tenant permission, as a tenant admin does.
var permissionMatrix = []struct {
	Perm  Permission
	What  string
	Roles []Role
}{
	{PermRead, "read brands, licensees, agreements, approvals", []Role{RoleAdmin, RoleManager, RoleUser, RoleViewer}},
	{PermAgreementsWrite, "create and edit draft agreements, submit them for approval", []Role{RoleAdmin, RoleManager, RoleUser}},
	{PermCatalogWrite, "create and edit brands and licensees", []Role{RoleAdmin, RoleManager}},
	{PermApprovalsDecide, "decide approval steps; put approved agreements into force or end them", []Role{RoleAdmin, RoleManager}},
	{PermDelete, "delete brands, licensees, agreements", []Role{RoleAdmin}},
	{PermAuditRead, "read the tenant's audit trail", []Role{RoleAdmin}},
	{PermTenantsManage, "management API (/api/v1/tenants...)", []Role{RoleOperator}},
}

// allows reports whether any of roles holds perm.
func allows(roles []Role, perm Permission) bool {
	for _, row := range permissionMatrix {
		if row.Perm != perm {
			continue
		}
		for _, r := range roles {
			if slices.Contains(row.Roles, r) {
				return true
			}
		}
	}
	return false
}

// rbacMarkdown renders the permission matrix as the README shows it.
func rbacMarkdown() string {
	var b strings.Builder
	cols := []Role{RoleAdmin, RoleManager, RoleUser, RoleViewer, RoleOperator}
	b.WriteString("| permission | what |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|---|")
	for range cols {
		b.WriteString(":-:|")
	}
	b.WriteString("\n")
	for _, row := range permissionMatrix {
		fmt.Fprintf(&b, "| `%s` | %s |", row.Perm, row.What)
		for _, c := range cols {
			mark := ""
			if slices.Contains(row.Roles, c) || (c == RoleOperator && row.Perm != PermTenantsManage) {
				mark = "✓"
			}
			fmt.Fprintf(&b, " %s |", mark)
		}
		b.WriteString("\n")
	}
	return b.String()
}
