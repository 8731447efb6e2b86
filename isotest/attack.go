package isotest

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Class groups attacks by the part of the isolation model they test.
type Class string

// The attack classes of the catalogue.
const (
	ClassRoleEscape   Class = "role-escape"
	ClassCrossSchema  Class = "cross-schema"
	ClassSearchPath   Class = "search-path"
	ClassSessionState Class = "session-state"
	ClassGatewayPriv  Class = "gateway-privilege"
	ClassMetadata     Class = "metadata"
	ClassNotify       Class = "listen-notify"
	ClassLargeObject  Class = "large-object"
	ClassServerFiles  Class = "server-files"
	ClassIdentifier   Class = "identifier"
	ClassResource     Class = "resource"
	ClassProtocol     Class = "protocol"
)

// Classes lists every class in catalogue order.
func Classes() []Class {
	return []Class{ClassRoleEscape, ClassCrossSchema, ClassSearchPath, ClassSessionState, ClassGatewayPriv,
		ClassMetadata, ClassNotify, ClassLargeObject, ClassServerFiles, ClassIdentifier, ClassResource, ClassProtocol}
}

// Severity is how bad a failure of an attack would be.
type Severity string

// Severities, worst first.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
)

// Outcome is what an attack achieved (observed) or may achieve without the
// suite failing (expected).
type Outcome string

// Outcomes, from harmless to worst. An observed outcome worse than the
// expected one for the mode fails the attack.
const (
	// Blocked: the database or the router refused, or the attack ran and saw
	// nothing of the victim.
	Blocked Outcome = "blocked"
	// NotApplicable: the attack cannot be expressed in this mode (for example
	// LISTEN when every unit of work is one transaction).
	NotApplicable Outcome = "not-applicable"
	// SideChannel: the attacker learned about the victim's activity (counts,
	// timing, lock keys), not its data.
	SideChannel Outcome = "side-channel"
	// LeakedMetadata: the attacker read names, comments, defaults or other
	// catalog facts about the victim.
	LeakedMetadata Outcome = "leaked-metadata"
	// DoS: the attacker could degrade or deny service to other tenants.
	DoS Outcome = "dos"
	// LeakedData: the attacker read the victim's data.
	LeakedData Outcome = "leaked-data"
	// Write: the attacker changed data or state outside its own tenant.
	Write Outcome = "write"
)

// rank orders outcomes by harm.
func (o Outcome) rank() int {
	switch o {
	case Blocked, NotApplicable:
		return 0
	case SideChannel:
		return 1
	case LeakedMetadata:
		return 2
	case DoS:
		return 3
	case LeakedData:
		return 4
	case Write:
		return 5
	}
	return 6
}

// Verdict is how an observed outcome compares with the expected one.
type Verdict string

// Verdicts.
const (
	// Pass: the attack was blocked, or did no more than expected without the
	// expectation being a residual risk.
	Pass Verdict = "pass"
	// Residual: the attack succeeded as far as the mode's documented residual
	// risk allows (for example SET ROLE to another tenant in SessionRole). It
	// does not fail the suite; the report lists it.
	Residual Verdict = "residual"
	// Fail: the attack achieved more than the mode allows: a leak.
	Fail Verdict = "fail"
	// Skipped: the attack did not apply in this mode, or was not selected.
	Skipped Verdict = "skipped"
	// Error: the harness could not carry the attack out; the result proves
	// nothing either way and the suite fails.
	Error Verdict = "error"
)

// Mode names as the catalogue keys its expectations. They match
// router.Mode.String().
const (
	ModeSessionRole = "SessionRole"
	ModeTxLocal     = "TxLocal"
	ModeTenantLogin = "TenantLogin"
)

// Modes lists the modes the catalogue has expectations for.
func Modes() []string { return []string{ModeSessionRole, ModeTxLocal, ModeTenantLogin} }

// Attack is one entry of the catalogue.
type Attack struct {
	// ID is stable across releases, e.g. "ROLE-001".
	ID       string
	Class    Class
	Severity Severity
	// Title is a one-line summary.
	Title string
	// Description says why the attack matters (and which CVE or documented
	// PostgreSQL behaviour it comes from).
	Description string
	// Action is the SQL or API call the attacker tries, as shown in reports.
	Action string
	// Expect is the worst acceptable outcome per mode name. An outcome other
	// than Blocked or NotApplicable is a known residual risk of that mode.
	Expect map[string]Outcome
	// Residual says, for a CISO, why the expected non-blocked outcome is
	// accepted and what closes it.
	Residual string

	run func(ctx context.Context, e *env) observation
}

// observation is what one attack saw.
type observation struct {
	Outcome Outcome
	// Evidence is what the attack saw, e.g. the error or the canary it read.
	Evidence string
	// Err is set when the harness itself failed; Outcome is then meaningless.
	Err error
}

func observed(o Outcome, format string, args ...any) observation {
	return observation{Outcome: o, Evidence: fmt.Sprintf(format, args...)}
}

func failed(err error) observation { return observation{Err: err} }

// judge compares an observation with an expectation.
func judge(obs observation, exp Outcome) Verdict {
	switch {
	case obs.Err != nil:
		return Error
	case obs.Outcome.rank() > exp.rank():
		return Fail
	case obs.Outcome.rank() > 0:
		return Residual
	case obs.Outcome == NotApplicable:
		return Skipped
	}
	return Pass
}

var catalogue []*Attack

func register(as ...*Attack) { catalogue = append(catalogue, as...) }

// Catalogue returns every attack, sorted by class (in Classes order) and ID.
// The returned attacks must not be modified.
func Catalogue() []*Attack {
	order := map[Class]int{}
	for i, c := range Classes() {
		order[c] = i
	}
	out := append([]*Attack(nil), catalogue...)
	sort.SliceStable(out, func(i, j int) bool {
		if order[out[i].Class] != order[out[j].Class] {
			return order[out[i].Class] < order[out[j].Class]
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// expectAll expects o in every mode.
func expectAll(o Outcome) map[string]Outcome {
	return map[string]Outcome{ModeSessionRole: o, ModeTxLocal: o, ModeTenantLogin: o}
}

// expectShared expects shared in the shared-pool modes (SessionRole, TxLocal)
// and tl in TenantLogin.
func expectShared(shared, tl Outcome) map[string]Outcome {
	return map[string]Outcome{ModeSessionRole: shared, ModeTxLocal: shared, ModeTenantLogin: tl}
}

// CatalogueMarkdown renders the catalogue as the Markdown table kept in
// docs/SECURITY.md: one row per attack with its expected outcome per mode.
func CatalogueMarkdown() string {
	var b strings.Builder
	b.WriteString("| id | class | severity | attack | " + strings.Join(Modes(), " | ") + " |\n")
	b.WriteString("|---|---|---|---|" + strings.Repeat("---|", len(Modes())) + "\n")
	for _, a := range Catalogue() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |", a.ID, a.Class, a.Severity, strings.ReplaceAll(a.Title, "|", "\\|"))
		for _, m := range Modes() {
			o := a.Expect[m]
			if o.rank() > 0 {
				fmt.Fprintf(&b, " %s (residual) |", o)
			} else {
				fmt.Fprintf(&b, " %s |", o)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
