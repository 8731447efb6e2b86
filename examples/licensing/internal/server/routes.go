package server

// routeTable lists every API route: method, pattern, permission, whether it
// runs inside a tenant, and what the OpenAPI description says about it.
func (s *Server) routeTable() []route {
	tenantsQ := []string{"status", "limit", "after"}
	pageQ := []string{"limit", "offset"}
	return []route{
		// Management API (platform operators).
		{Method: "POST", Pattern: "/api/v1/tenants", Perm: PermTenantsManage, Summary: "Create and provision a tenant", Body: "TenantCreate", Resp: "Tenant", Success: 201, h: s.createTenant},
		{Method: "GET", Pattern: "/api/v1/tenants", Perm: PermTenantsManage, Summary: "List tenants (paged by id, filter by status)", Resp: "TenantList", Query: tenantsQ, Success: 200, h: s.listTenants},
		{Method: "GET", Pattern: "/api/v1/tenants/{id}", Perm: PermTenantsManage, Summary: "Get a tenant", Resp: "Tenant", Success: 200, h: s.getTenant},
		{Method: "PATCH", Pattern: "/api/v1/tenants/{id}", Perm: PermTenantsManage, Summary: "Change a tenant's name, settings or limits", Body: "TenantPatch", Resp: "Tenant", Success: 200, h: s.patchTenant},
		{Method: "POST", Pattern: "/api/v1/tenants/{id}/activate", Perm: PermTenantsManage, Summary: "Activate a suspended or archived tenant", Resp: "Tenant", Success: 200, h: s.lifecycle("activate")},
		{Method: "POST", Pattern: "/api/v1/tenants/{id}/suspend", Perm: PermTenantsManage, Summary: "Suspend an active tenant", Resp: "Tenant", Success: 200, h: s.lifecycle("suspend")},
		{Method: "POST", Pattern: "/api/v1/tenants/{id}/archive", Perm: PermTenantsManage, Summary: "Archive a tenant", Resp: "Tenant", Success: 200, h: s.lifecycle("archive")},
		{Method: "POST", Pattern: "/api/v1/tenants/{id}/restore", Perm: PermTenantsManage, Summary: "Restore a soft-deleted tenant before its retention deadline", Resp: "Tenant", Success: 200, h: s.lifecycle("restore")},
		{Method: "POST", Pattern: "/api/v1/tenants/{id}/schema", Perm: PermTenantsManage, Summary: "Provision the tenant's schema (creates the tenant; catalog row and schema are one transaction)", Body: "TenantCreate", Resp: "Tenant", Success: 201, h: s.provisionSchema},
		{Method: "DELETE", Pattern: "/api/v1/tenants/{id}/schema", Perm: PermTenantsManage, Summary: "Soft-delete the tenant: unroutable at once, data kept until retention ends", Resp: "Tenant", Query: []string{"retention"}, Success: 200, h: s.lifecycle("delete")},
		{Method: "GET", Pattern: "/api/v1/tenants/{id}/schema/status", Perm: PermTenantsManage, Summary: "Schema status: status, version, size, object count", Resp: "SchemaStatus", Success: 200, h: s.schemaStatus},
		{Method: "GET", Pattern: "/api/v1/platform/audit", Perm: PermTenantsManage, Summary: "Audit events of every tenant (or ?tenant=)", Resp: "AuditList", Query: []string{"tenant", "action", "before_id", "limit"}, Success: 200, h: s.listAuditPlatform},

		// Licensing API (tenant users; operators with X-Tenant).
		{Method: "POST", Pattern: "/api/v1/brands", Tenant: true, Perm: PermCatalogWrite, Summary: "Create a brand", Body: "BrandInput", Resp: "Brand", Success: 201, h: s.createBrand},
		{Method: "GET", Pattern: "/api/v1/brands", Tenant: true, Perm: PermRead, Summary: "List brands", Resp: "BrandList", Query: append([]string{"status", "name_prefix"}, pageQ...), Success: 200, h: s.listBrands},
		{Method: "GET", Pattern: "/api/v1/brands/{id}", Tenant: true, Perm: PermRead, Summary: "Get a brand", Resp: "Brand", Success: 200, h: s.getBrand},
		{Method: "PATCH", Pattern: "/api/v1/brands/{id}", Tenant: true, Perm: PermCatalogWrite, Summary: "Change a brand", Body: "BrandInput", Resp: "Brand", Success: 200, h: s.patchBrand},
		{Method: "DELETE", Pattern: "/api/v1/brands/{id}", Tenant: true, Perm: PermDelete, Summary: "Delete a brand without agreements", Success: 204, h: s.deleteBrand},
		{Method: "POST", Pattern: "/api/v1/licensees", Tenant: true, Perm: PermCatalogWrite, Summary: "Create a licensee", Body: "LicenseeInput", Resp: "Licensee", Success: 201, h: s.createLicensee},
		{Method: "GET", Pattern: "/api/v1/licensees", Tenant: true, Perm: PermRead, Summary: "List licensees", Resp: "LicenseeList", Query: append([]string{"status", "country", "name_prefix"}, pageQ...), Success: 200, h: s.listLicensees},
		{Method: "GET", Pattern: "/api/v1/licensees/{id}", Tenant: true, Perm: PermRead, Summary: "Get a licensee", Resp: "Licensee", Success: 200, h: s.getLicensee},
		{Method: "PATCH", Pattern: "/api/v1/licensees/{id}", Tenant: true, Perm: PermCatalogWrite, Summary: "Change a licensee", Body: "LicenseeInput", Resp: "Licensee", Success: 200, h: s.patchLicensee},
		{Method: "DELETE", Pattern: "/api/v1/licensees/{id}", Tenant: true, Perm: PermDelete, Summary: "Delete a licensee without agreements", Success: 204, h: s.deleteLicensee},
		{Method: "POST", Pattern: "/api/v1/agreements", Tenant: true, Perm: PermAgreementsWrite, Summary: "Create a draft agreement", Body: "AgreementInput", Resp: "Agreement", Success: 201, h: s.createAgreement},
		{Method: "GET", Pattern: "/api/v1/agreements", Tenant: true, Perm: PermRead, Summary: "List agreements", Resp: "AgreementList", Query: append([]string{"status", "brand_id", "licensee_id", "territory"}, pageQ...), Success: 200, h: s.listAgreements},
		{Method: "GET", Pattern: "/api/v1/agreements/{id}", Tenant: true, Perm: PermRead, Summary: "Get an agreement", Resp: "Agreement", Success: 200, h: s.getAgreement},
		{Method: "PATCH", Pattern: "/api/v1/agreements/{id}", Tenant: true, Perm: PermAgreementsWrite, Summary: "Edit a draft or rejected agreement's terms (version required)", Body: "AgreementInput", Resp: "Agreement", Success: 200, h: s.patchAgreement},
		{Method: "DELETE", Pattern: "/api/v1/agreements/{id}", Tenant: true, Perm: PermDelete, Summary: "Delete an agreement and its approvals", Success: 204, h: s.deleteAgreement},
		{Method: "POST", Pattern: "/api/v1/agreements/{id}/submit", Tenant: true, Perm: PermAgreementsWrite, Summary: "Submit for approval: opens the approval steps", Body: "SubmitInput", Resp: "Submission", Success: 200, h: s.submitAgreement},
		{Method: "POST", Pattern: "/api/v1/agreements/{id}/status", Perm: PermApprovalsDecide, Tenant: true, Summary: "Put an approved agreement into force (active) or end it (expired, terminated); version required", Body: "StatusInput", Resp: "Agreement", Success: 200, h: s.setAgreementStatus},
		{Method: "GET", Pattern: "/api/v1/agreements/expiring", Tenant: true, Perm: PermRead, Summary: "Approved or active agreements ending before a date (default today + 90 days)", Resp: "AgreementItems", Query: []string{"before", "limit"}, Success: 200, h: s.expiringAgreements},
		{Method: "GET", Pattern: "/api/v1/agreements/{id}/approvals", Tenant: true, Perm: PermRead, Summary: "List an agreement's approval steps", Resp: "ApprovalList", Success: 200, h: s.listAgreementApprovals},
		{Method: "GET", Pattern: "/api/v1/approvals/{id}", Tenant: true, Perm: PermRead, Summary: "Get an approval step", Resp: "Approval", Success: 200, h: s.getApproval},
		{Method: "POST", Pattern: "/api/v1/approvals/{id}/decision", Tenant: true, Perm: PermApprovalsDecide, Summary: "Approve or reject a pending step", Body: "DecisionInput", Resp: "Decision", Success: 200, h: s.decideApproval},
		{Method: "GET", Pattern: "/api/v1/audit", Tenant: true, Perm: PermAuditRead, Summary: "The tenant's audit trail, newest first", Resp: "AuditList", Query: []string{"action", "before_id", "limit"}, Success: 200, h: s.listAudit},
	}
}
