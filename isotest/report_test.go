package isotest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
)

// weakSubset has one attack of each verdict against the weak fixture: a
// leak, a known residual and a pass.
var weakSubset = []string{"XS-001", "ROLE-001", "FILE-001"}

func weakReport(t *testing.T) *isotest.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	target, _ := weakTarget(t)
	rep, err := isotest.Audit(ctx, target, &isotest.RunOpts{IDs: weakSubset})
	require.NoError(t, err)
	require.Equal(t, isotest.Summary{Pass: 1, Residual: 1, Fail: 1}, rep.Summary)
	return rep
}

// TestReportFormats writes one real report (the weak fixture, three
// attacks) in every format and validates each.
func TestReportFormats(t *testing.T) {
	t.Parallel()
	rep := weakReport(t)
	t.Run("JUnit", func(t *testing.T) { checkJUnit(t, rep) })
	t.Run("SARIF", func(t *testing.T) { checkSARIF(t, rep) })
	t.Run("JSONAndText", func(t *testing.T) { checkJSONAndText(t, rep) })
}

// checkJUnit: the JUnit XML parses with encoding/xml into
// testsuites/testsuite/testcase with one failure for the leak.
func checkJUnit(t *testing.T, rep *isotest.Report) {
	var buf bytes.Buffer
	require.NoError(t, rep.WriteJUnit(&buf))

	type problem struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Cases    []struct {
				Name      string   `xml:"name,attr"`
				Classname string   `xml:"classname,attr"`
				Time      string   `xml:"time,attr"`
				Failure   *problem `xml:"failure"`
				SystemOut string   `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(buf.Bytes(), &doc), buf.String())
	require.Equal(t, 3, doc.Tests)
	require.Equal(t, 1, doc.Failures)
	var cases, failures int
	for _, s := range doc.Suites {
		require.NotEmpty(t, s.Name)
		for _, c := range s.Cases {
			cases++
			require.NotEmpty(t, c.Classname)
			require.Regexp(t, `^\d+\.\d{3}$`, c.Time)
			if c.Failure != nil {
				failures++
				require.True(t, strings.HasPrefix(c.Name, "XS-001"), c.Name)
				require.Contains(t, c.Failure.Message, "leaked-data")
			}
			if strings.HasPrefix(c.Name, "ROLE-001") {
				require.Contains(t, c.SystemOut, "known residual")
			}
		}
	}
	require.Equal(t, 3, cases)
	require.Equal(t, 1, failures)
}

// checkSARIF: the SARIF log has every property the SARIF 2.1.0 schema
// requires of the objects it uses, and values from the schema's enums.
func checkSARIF(t *testing.T, rep *isotest.Report) {
	var buf bytes.Buffer
	require.NoError(t, rep.WriteSARIF(&buf))
	var log map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &log))

	// sarifLog: required "version" (const "2.1.0") and "runs".
	require.Equal(t, "2.1.0", log["version"])
	require.Regexp(t, `^https://.*sarif-schema-2\.1\.0\.json$`, log["$schema"])
	runs := log["runs"].([]any)
	require.Len(t, runs, 1)
	run := runs[0].(map[string]any)
	// run: required "tool"; tool: required "driver"; toolComponent: required "name".
	driver := run["tool"].(map[string]any)["driver"].(map[string]any)
	require.NotEmpty(t, driver["name"])
	rules := driver["rules"].([]any)
	require.Len(t, rules, len(isotest.Catalogue()))
	ids := map[string]int{}
	for i, r := range rules {
		rule := r.(map[string]any)
		id, _ := rule["id"].(string) // reportingDescriptor: required "id"
		require.NotEmpty(t, id)
		ids[id] = i
		require.NotEmpty(t, rule["shortDescription"].(map[string]any)["text"]) // multiformatMessageString: required "text"
		require.Contains(t, []string{"none", "note", "warning", "error"}, rule["defaultConfiguration"].(map[string]any)["level"])
	}
	results := run["results"].([]any)
	require.Len(t, results, 3)
	kinds := map[string]string{}
	for _, x := range results {
		res := x.(map[string]any)
		msg := res["message"].(map[string]any) // result: required "message"; message: "text" or "id"
		require.NotEmpty(t, msg["text"])
		ruleID := res["ruleId"].(string)
		require.Equal(t, float64(ids[ruleID]), res["ruleIndex"], "ruleIndex points at the rule")
		require.Contains(t, []string{"none", "note", "warning", "error"}, res["level"])
		require.Contains(t, []string{"notApplicable", "pass", "fail", "review", "open", "informational"}, res["kind"])
		kinds[ruleID] = res["kind"].(string) + "/" + res["level"].(string)
	}
	require.Equal(t, map[string]string{"XS-001": "fail/error", "ROLE-001": "fail/note", "FILE-001": "pass/none"}, kinds)
}

// checkJSONAndText: the JSON round-trips and the text names the
// verdict, versions, hardening and the leak.
func checkJSONAndText(t *testing.T, rep *isotest.Report) {
	var buf bytes.Buffer
	require.NoError(t, rep.WriteJSON(&buf))
	var back isotest.Report
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	require.Equal(t, rep.Summary, back.Summary)
	require.Len(t, back.Results, 3)
	require.NotEmpty(t, back.PostgreSQL)
	require.NotEmpty(t, back.Hardening)

	buf.Reset()
	require.NoError(t, rep.WriteText(&buf))
	text := buf.String()
	for _, want := range []string{"VERDICT: LEAKS FOUND", "PostgreSQL 15", "Hardening found in place", "[NO ] schema public closed to PUBLIC", "XS-001", "LEAKS (worse than the mode allows)"} {
		require.Contains(t, text, want)
	}
}

// TestCatalogue: every attack is complete and every class has several.
func TestCatalogue(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	perClass := map[isotest.Class]int{}
	idRE := regexp.MustCompile(`^[A-Z]+-\d{3}$`)
	for _, a := range isotest.Catalogue() {
		require.Regexp(t, idRE, a.ID)
		require.False(t, seen[a.ID], "duplicate %s", a.ID)
		seen[a.ID] = true
		perClass[a.Class]++
		require.NotEmpty(t, a.Title, a.ID)
		require.NotEmpty(t, a.Description, a.ID)
		require.NotEmpty(t, a.Action, a.ID)
		require.Contains(t, []isotest.Severity{isotest.SeverityCritical, isotest.SeverityHigh, isotest.SeverityMedium, isotest.SeverityLow}, a.Severity, a.ID)
		for _, m := range isotest.Modes() {
			o, ok := a.Expect[m]
			require.True(t, ok, "%s has no expectation for %s", a.ID, m)
			if o != isotest.Blocked && o != isotest.NotApplicable {
				require.NotEmpty(t, a.Residual, "%s accepts %s in %s and must say why", a.ID, o, m)
			}
		}
	}
	for _, c := range isotest.Classes() {
		require.GreaterOrEqual(t, perClass[c], 3, "class %s needs several attacks", c)
	}
}

// TestSecurityDocInSync: docs/SECURITY.md carries the catalogue table as
// CatalogueMarkdown renders it. BULKHEAD_UPDATE_DOCS=1 rewrites it.
func TestSecurityDocInSync(t *testing.T) {
	t.Parallel()
	const path = "../docs/SECURITY.md"
	const begin, end = "<!-- isotest-catalogue:begin -->\n", "<!-- isotest-catalogue:end -->"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	require.True(t, i >= 0 && j > i, "%s must contain the markers %q and %q", path, begin, end)
	want := doc[:i+len(begin)] + isotest.CatalogueMarkdown() + doc[j:]
	if os.Getenv("BULKHEAD_UPDATE_DOCS") != "" && want != doc {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, doc, "docs/SECURITY.md is out of date: run BULKHEAD_UPDATE_DOCS=1 go test ./isotest -run TestSecurityDocInSync")
}
