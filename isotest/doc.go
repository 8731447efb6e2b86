// Package isotest attacks bulkhead's tenant isolation and reports what held,
// and provides the PostgreSQL servers and throwaway deployments tests need.
//
// # Test servers and deployments
//
// SharedServer (with Main in TestMain) starts one throwaway PostgreSQL per
// test binary; NewDeployment gives each test a fresh database, hardened by
// provision.Init, with an admin pool, a Provisioner and a Router; NewTenant
// adds throwaway tenants.
//
// # The attack harness
//
// Run (in go test) and Audit (library and CLI) run the catalogue of attacks
// against a Target: the router (or a Scope wrapping it), the Provisioner and
// the admin pool. By default the harness provisions two throwaway tenants, A
// the attacker and B the victim; Target.Attacker and Target.Victim name
// existing tenants instead, for example tenants carrying the application's
// own schema. It plants unique canary values wherever B's data can live,
// attacks from A's scoped handle, and looks for any B canary or B activity.
// Everything it creates is removed afterwards, also when the run is
// interrupted (context cancelled, test failed).
//
//	func TestIsolation(t *testing.T) {
//		d := isotest.NewDeployment(t, nil)
//		isotest.Run(t, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}, nil)
//	}
//
// # Outcomes and verdicts
//
// Each Attack has a stable ID, a Class, a Severity and, per isolation mode,
// the worst Outcome that mode allows (Attack.Expect). An observation no worse
// than that is a Pass when blocked and a Residual otherwise: a documented
// limit of the mode (SET ROLE to another tenant in SessionRole, catalog names
// visible to everyone), reported with its reason and never failed. Anything
// worse is a Fail; an attack the harness could not carry out is an Error,
// which also fails, because it proves nothing. Catalogue lists the attacks;
// CatalogueMarkdown renders the table kept in docs/SECURITY.md.
//
// # Reports
//
// A Report states the PostgreSQL and pgx versions, the hardening found in
// place (read-only checks), what the mode protects against in plain words,
// and every result. WriteText is for people; WriteJSON, WriteJUnit (one
// testsuite per class) and WriteSARIF (SARIF 2.1.0, one rule per attack) are
// for archives, CI test reporters and code-scanning dashboards.
package isotest
