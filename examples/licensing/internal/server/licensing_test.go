package server

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func agreementBody(brand, licensee, title string) map[string]any {
	return map[string]any{"brand_id": brand, "licensee_id": licensee, "title": title, "territory": []string{"GB", "FR"},
		"start_date": "2026-01-01", "end_date": "2028-12-31", "royalty_rate_bps": 1250,
		"minimum_guarantee_minor": 1_000_000, "minimum_guarantee_currency": "EUR"}
}

// fixtures creates a brand, a licensee and a draft agreement in tenant.
func (e *env) fixtures(tenant tenancy.ID, tok, suffix string) (brand, licensee, agreement string) {
	e.t.Helper()
	brand = e.must(201, e.do("POST", "/api/v1/brands", tok, map[string]any{"name": "Brand " + suffix})).str("id")
	licensee = e.must(201, e.do("POST", "/api/v1/licensees", tok, map[string]any{"name": "Licensee " + suffix, "contact_email": "a@b.example", "country": "GB"})).str("id")
	agreement = e.must(201, e.do("POST", "/api/v1/agreements", tok, agreementBody(brand, licensee, "Deal "+suffix))).str("id")
	return
}

func TestBrandsAndLicensees(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	admin := e.token("tenant-a", "alice", RoleAdmin)
	viewer := e.token("tenant-a", "victor", RoleViewer)

	// Create, with validation errors and the case-insensitive unique name.
	b := e.must(201, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": "Acme", "description": "d"}))
	require.Equal(t, "active", b.str("status"))
	bad := e.must(400, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": "", "status": "retired"}))
	require.Contains(t, bad.Body["fields"], "name")
	require.Contains(t, bad.Body["fields"], "status")
	e.must(400, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": "x", "bogus": 1}))
	dup := e.must(409, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": "ACME"}))
	require.Contains(t, dup.Body["fields"], "name")
	for i := range 4 {
		e.must(201, e.do("POST", "/api/v1/brands", admin, map[string]any{"name": fmt.Sprintf("Zeta %d", i)}))
	}

	// List: pagination, filters, totals; viewer may read.
	l := e.must(200, e.do("GET", "/api/v1/brands?limit=2&offset=1", viewer, nil))
	require.Len(t, l.items(), 2)
	require.EqualValues(t, 5, l.Body["total"])
	l = e.must(200, e.do("GET", "/api/v1/brands?name_prefix=zeta&status=active", viewer, nil))
	require.EqualValues(t, 4, l.Body["total"])
	e.must(400, e.do("GET", "/api/v1/brands?limit=0", viewer, nil))
	e.must(400, e.do("GET", "/api/v1/brands?status=gone", viewer, nil))

	// Get, patch, RBAC, delete.
	id := b.str("id")
	require.Equal(t, "Acme", e.must(200, e.do("GET", "/api/v1/brands/"+id, viewer, nil)).str("name"))
	e.must(403, e.do("PATCH", "/api/v1/brands/"+id, viewer, map[string]any{"status": "retired"}))
	require.Equal(t, "retired", e.must(200, e.do("PATCH", "/api/v1/brands/"+id, admin, map[string]any{"status": "retired"})).str("status"))
	e.must(400, e.do("PATCH", "/api/v1/brands/"+id, admin, map[string]any{"status": "gone"}))
	e.must(404, e.do("GET", "/api/v1/brands/not-a-uuid", viewer, nil))
	e.must(404, e.do("PATCH", "/api/v1/brands/00000000-0000-0000-0000-000000000000", admin, map[string]any{"name": "n"}))
	manager := e.token("tenant-a", "mia", RoleManager)
	e.must(403, e.do("DELETE", "/api/v1/brands/"+id, manager, nil))
	e.must(204, e.do("DELETE", "/api/v1/brands/"+id, admin, nil))
	e.must(404, e.do("DELETE", "/api/v1/brands/"+id, admin, nil))

	// Licensees.
	lic := e.must(201, e.do("POST", "/api/v1/licensees", manager, map[string]any{"name": "Lic", "contact_email": "x@y.example", "country": "US"}))
	bad = e.must(400, e.do("POST", "/api/v1/licensees", manager, map[string]any{"name": "L2", "contact_email": "nope", "country": "usa"}))
	require.Contains(t, bad.Body["fields"], "contact_email")
	require.Contains(t, bad.Body["fields"], "country")
	e.must(409, e.do("POST", "/api/v1/licensees", manager, map[string]any{"name": "LIC", "contact_email": "x@y.example", "country": "US"}))
	require.EqualValues(t, 1, e.must(200, e.do("GET", "/api/v1/licensees?country=US", viewer, nil)).Body["total"])
	require.EqualValues(t, 0, e.must(200, e.do("GET", "/api/v1/licensees?country=GB", viewer, nil)).Body["total"])
	e.must(400, e.do("GET", "/api/v1/licensees?country=gb", viewer, nil))
	lid := lic.str("id")
	require.Equal(t, "inactive", e.must(200, e.do("PATCH", "/api/v1/licensees/"+lid, manager, map[string]any{"status": "inactive"})).str("status"))
	require.Equal(t, "US", e.must(200, e.do("GET", "/api/v1/licensees/"+lid, viewer, nil)).str("country"))
	e.must(204, e.do("DELETE", "/api/v1/licensees/"+lid, admin, nil))

	// Every mutation is in the audit trail with actor and target.
	evs := e.audit("tenant-a", "brand.create")
	require.Len(t, evs, 5)
	require.Equal(t, "tenant-a:alice", evs[0].Actor)
	require.NotEmpty(t, evs[0].Target)
	require.Len(t, e.audit("tenant-a", "licensee.delete"), 1)
}

func TestAgreementsAndApprovals(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	admin := e.token("tenant-a", "alice", RoleAdmin)
	user := e.token("tenant-a", "uma", RoleUser)
	manager := e.token("tenant-a", "mia", RoleManager)
	viewer := e.token("tenant-a", "victor", RoleViewer)
	brand, lic, ag := e.fixtures("tenant-a", admin, "1")

	// Validation.
	body := agreementBody(brand, lic, "Bad")
	body["territory"] = []string{"gb"}
	body["end_date"] = "2020-01-01"
	body["royalty_rate_bps"] = 20000
	body["minimum_guarantee_currency"] = "euro"
	bad := e.must(400, e.do("POST", "/api/v1/agreements", user, body))
	for _, f := range []string{"territory", "end_date", "royalty_rate_bps", "minimum_guarantee_currency"} {
		require.Contains(t, bad.Body["fields"], f)
	}
	e.must(400, e.do("POST", "/api/v1/agreements", user, map[string]any{"title": "x"}))
	unknown := e.must(400, e.do("POST", "/api/v1/agreements", user, agreementBody("00000000-0000-0000-0000-000000000001", lic, "X")))
	require.Contains(t, unknown.Body["fields"], "brand_id")
	e.must(409, e.do("POST", "/api/v1/agreements", user, agreementBody(brand, lic, "Deal 1")))
	e.must(403, e.do("POST", "/api/v1/agreements", viewer, agreementBody(brand, lic, "Deal 2")))
	a2 := e.must(201, e.do("POST", "/api/v1/agreements", user, agreementBody(brand, lic, "Deal 2")))
	body = agreementBody(brand, lic, "Deal US")
	body["territory"] = []string{"US"}
	e.must(201, e.do("POST", "/api/v1/agreements", user, body))

	// List filters.
	require.EqualValues(t, 3, e.must(200, e.do("GET", "/api/v1/agreements?brand_id="+brand, viewer, nil)).Body["total"])
	require.EqualValues(t, 1, e.must(200, e.do("GET", "/api/v1/agreements?territory=US", viewer, nil)).Body["total"])
	require.EqualValues(t, 3, e.must(200, e.do("GET", "/api/v1/agreements?status=draft", viewer, nil)).Body["total"])
	require.Len(t, e.must(200, e.do("GET", "/api/v1/agreements?limit=1", viewer, nil)).items(), 1)
	e.must(400, e.do("GET", "/api/v1/agreements?brand_id=nope", viewer, nil))

	// Edit with optimistic locking.
	got := e.must(200, e.do("GET", "/api/v1/agreements/"+ag, viewer, nil))
	require.EqualValues(t, 1, got.Body["version"])
	e.must(400, e.do("PATCH", "/api/v1/agreements/"+ag, user, map[string]any{"royalty_rate_bps": 1000}))
	upd := e.must(200, e.do("PATCH", "/api/v1/agreements/"+ag, user, map[string]any{"version": 1, "royalty_rate_bps": 1000}))
	require.EqualValues(t, 2, upd.Body["version"])
	require.EqualValues(t, 1000, upd.Body["royalty_rate_bps"])
	e.must(409, e.do("PATCH", "/api/v1/agreements/"+ag, user, map[string]any{"version": 1, "royalty_rate_bps": 900}))

	// Workflow: submit with two steps, one assigned to mia.
	e.must(409, e.do("POST", "/api/v1/agreements/"+ag+"/submit", user, map[string]any{"version": 1}))
	sub := e.must(200, e.do("POST", "/api/v1/agreements/"+ag+"/submit", user, map[string]any{"version": 2, "approvers": []string{"mia", ""}}))
	steps := sub.Body["approvals"].([]any)
	require.Len(t, steps, 2)
	s1 := steps[0].(map[string]any)["id"].(string)
	s2 := steps[1].(map[string]any)["id"].(string)
	e.must(409, e.do("PATCH", "/api/v1/agreements/"+ag, user, map[string]any{"version": 3, "title": "Locked"}))
	require.Len(t, e.must(200, e.do("GET", "/api/v1/agreements/"+ag+"/approvals", viewer, nil)).items(), 2)
	require.Equal(t, "pending", e.must(200, e.do("GET", "/api/v1/approvals/"+s1, viewer, nil)).str("decision"))

	e.must(403, e.do("POST", "/api/v1/approvals/"+s1+"/decision", user, map[string]any{"decision": "approved"}))
	e.must(400, e.do("POST", "/api/v1/approvals/"+s1+"/decision", manager, map[string]any{"decision": "maybe"}))
	// Step 1 is assigned to mia: alice (admin) cannot decide it.
	e.must(409, e.do("POST", "/api/v1/approvals/"+s1+"/decision", admin, map[string]any{"decision": "approved"}))
	d1 := e.must(200, e.do("POST", "/api/v1/approvals/"+s1+"/decision", manager, map[string]any{"decision": "approved", "comment": "ok"}))
	require.Equal(t, "pending_approval", d1.Body["agreement"].(map[string]any)["status"])
	e.must(409, e.do("POST", "/api/v1/approvals/"+s1+"/decision", manager, map[string]any{"decision": "rejected"}))
	d2 := e.must(200, e.do("POST", "/api/v1/approvals/"+s2+"/decision", admin, map[string]any{"decision": "approved"}))
	require.Equal(t, "approved", d2.Body["agreement"].(map[string]any)["status"])

	// Into force and out of it, with optimistic locking and legal transitions only.
	ver := d2.Body["agreement"].(map[string]any)["version"]
	exp := e.must(200, e.do("GET", "/api/v1/agreements/expiring?before=2029-01-01", viewer, nil))
	require.Len(t, exp.items(), 1)
	require.Empty(t, e.must(200, e.do("GET", "/api/v1/agreements/expiring?before=2028-01-01", viewer, nil)).items())
	e.must(400, e.do("GET", "/api/v1/agreements/expiring?before=someday", viewer, nil))
	e.must(403, e.do("POST", "/api/v1/agreements/"+ag+"/status", user, map[string]any{"status": "active", "version": ver}))
	e.must(400, e.do("POST", "/api/v1/agreements/"+ag+"/status", manager, map[string]any{"status": "draft", "version": ver}))
	e.must(409, e.do("POST", "/api/v1/agreements/"+ag+"/status", manager, map[string]any{"status": "expired", "version": ver}))
	e.must(409, e.do("POST", "/api/v1/agreements/"+ag+"/status", manager, map[string]any{"status": "active", "version": 1}))
	act := e.must(200, e.do("POST", "/api/v1/agreements/"+ag+"/status", manager, map[string]any{"status": "active", "version": ver}))
	require.Equal(t, "active", act.str("status"))
	require.Len(t, e.must(200, e.do("GET", "/api/v1/agreements?status=active", viewer, nil)).items(), 1)
	require.Len(t, e.audit("tenant-a", "agreement.status"), 1)

	// Rejection path on the second agreement, then resubmission.
	a2id := a2.str("id")
	sub = e.must(200, e.do("POST", "/api/v1/agreements/"+a2id+"/submit", user, map[string]any{"version": 1}))
	st := sub.Body["approvals"].([]any)[0].(map[string]any)["id"].(string)
	rej := e.must(200, e.do("POST", "/api/v1/approvals/"+st+"/decision", manager, map[string]any{"decision": "rejected", "comment": "rate too low"}))
	require.Equal(t, "rejected", rej.Body["agreement"].(map[string]any)["status"])
	v := int(rej.Body["agreement"].(map[string]any)["version"].(float64))
	v++
	e.must(200, e.do("PATCH", "/api/v1/agreements/"+a2id, user, map[string]any{"version": v - 1, "royalty_rate_bps": 1500}))
	sub = e.must(200, e.do("POST", "/api/v1/agreements/"+a2id+"/submit", user, map[string]any{"version": v}))
	require.EqualValues(t, 2, sub.Body["approvals"].([]any)[0].(map[string]any)["step"])

	// A brand with agreements cannot be deleted; the agreement can.
	e.must(409, e.do("DELETE", "/api/v1/brands/"+brand, admin, nil))
	e.must(403, e.do("DELETE", "/api/v1/agreements/"+ag, manager, nil))
	e.must(204, e.do("DELETE", "/api/v1/agreements/"+ag, admin, nil))
	e.must(404, e.do("GET", "/api/v1/approvals/"+s1, viewer, nil))

	require.Len(t, e.audit("tenant-a", "approval.decide"), 3)
	require.Len(t, e.audit("tenant-a", "agreement.submit"), 3)

	// Tenant admins read their audit trail; others may not.
	au := e.must(200, e.do("GET", "/api/v1/audit?action=agreement.submit&limit=2", admin, nil))
	require.Len(t, au.items(), 2)
	e.must(403, e.do("GET", "/api/v1/audit", manager, nil))
	e.must(400, e.do("GET", "/api/v1/audit?limit=x", admin, nil))
}

// TestCrossTenant: tenant B's token cannot read, list, modify or detect
// tenant A's objects by id; the 404 is byte-identical to a random id's.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := setup(t, &setupOpts{mode: mode})
			a := e.token("tenant-a", "alice", RoleAdmin)
			b := e.token("tenant-b", "bob", RoleAdmin)
			brand, lic, ag := e.fixtures("tenant-a", a, "A")
			sub := e.must(200, e.do("POST", "/api/v1/agreements/"+ag+"/submit", a, map[string]any{"version": 1}))
			step := sub.Body["approvals"].([]any)[0].(map[string]any)["id"].(string)
			e.fixtures("tenant-b", b, "B")

			random := "6f1c2a8e-0b7d-4e55-9a41-1f0d2c3b4a59"
			notFound := e.must(404, e.do("GET", "/api/v1/brands/"+random, b, nil)).Raw
			for _, p := range []string{"/api/v1/brands/" + brand, "/api/v1/licensees/" + lic, "/api/v1/agreements/" + ag,
				"/api/v1/approvals/" + step, "/api/v1/agreements/" + ag + "/approvals"} {
				require.Equal(t, notFound, e.must(404, e.do("GET", p, b, nil)).Raw, p)
			}
			e.must(404, e.do("PATCH", "/api/v1/brands/"+brand, b, map[string]any{"name": "pwned"}))
			e.must(404, e.do("PATCH", "/api/v1/licensees/"+lic, b, map[string]any{"name": "pwned"}))
			e.must(404, e.do("PATCH", "/api/v1/agreements/"+ag, b, map[string]any{"version": 2, "title": "pwned"}))
			e.must(404, e.do("POST", "/api/v1/agreements/"+ag+"/submit", b, map[string]any{"version": 2}))
			e.must(404, e.do("POST", "/api/v1/approvals/"+step+"/decision", b, map[string]any{"decision": "approved"}))
			e.must(404, e.do("POST", "/api/v1/agreements/"+ag+"/status", b, map[string]any{"status": "active", "version": 2}))
			e.must(404, e.do("DELETE", "/api/v1/agreements/"+ag, b, nil))
			e.must(404, e.do("DELETE", "/api/v1/brands/"+brand, b, nil))
			// B cannot reference A's brand in its own agreement either.
			e.must(400, e.do("POST", "/api/v1/agreements", b, agreementBody(brand, lic, "steal")))

			// Lists show only B's rows.
			for _, p := range []string{"/api/v1/brands", "/api/v1/licensees", "/api/v1/agreements"} {
				for _, it := range e.must(200, e.do("GET", p, b, nil)).items() {
					require.NotContains(t, []string{brand, lic, ag}, it["id"])
				}
			}
			require.EqualValues(t, 0, e.must(200, e.do("GET", "/api/v1/agreements?brand_id="+brand, b, nil)).Body["total"])
			require.Empty(t, e.must(200, e.do("GET", "/api/v1/agreements/expiring?before=2100-01-01", b, nil)).items())

			// B naming A in X-Tenant is refused before any database work.
			before := e.m.acquires.Load()
			e.must(403, e.do("GET", "/api/v1/brands/"+brand, b, nil, "X-Tenant", "tenant-a"))
			require.Equal(t, before, e.m.acquires.Load())

			// A's objects are untouched and B's audit shows none of A's ids.
			require.Equal(t, "Brand A", e.must(200, e.do("GET", "/api/v1/brands/"+brand, a, nil)).str("name"))
			require.Equal(t, "pending_approval", e.must(200, e.do("GET", "/api/v1/agreements/"+ag, a, nil)).str("status"))
			for _, it := range e.must(200, e.do("GET", "/api/v1/audit", b, nil)).items() {
				require.NotContains(t, []string{brand, lic, ag}, it["target"])
				require.Equal(t, "tenant-b", it["tenant"])
			}
		})
	}
}

// TestConcurrentDecisions: two approvers deciding the last two steps of an
// agreement at the same moment still approve it (the agreement row lock
// serializes the pending count).
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	admin := e.token("tenant-a", "alice", RoleAdmin)
	m1, m2 := e.token("tenant-a", "m1", RoleManager), e.token("tenant-a", "m2", RoleManager)
	brand, lic, _ := e.fixtures("tenant-a", admin, "C")
	for i := range 5 {
		ag := e.must(201, e.do("POST", "/api/v1/agreements", admin, agreementBody(brand, lic, fmt.Sprintf("Race %d", i)))).str("id")
		sub := e.must(200, e.do("POST", "/api/v1/agreements/"+ag+"/submit", admin, map[string]any{"version": 1, "approvers": []string{"m1", "m2"}}))
		steps := sub.Body["approvals"].([]any)
		done := make(chan int, 2)
		for j, tok := range []string{m1, m2} {
			id := steps[j].(map[string]any)["id"].(string)
			go func() {
				done <- e.do("POST", "/api/v1/approvals/"+id+"/decision", tok, map[string]any{"decision": "approved"}).Code
			}()
		}
		require.Equal(t, 200, <-done)
		require.Equal(t, 200, <-done)
		require.Equal(t, "approved", e.must(200, e.do("GET", "/api/v1/agreements/"+ag, admin, nil)).str("status"))
	}
}
