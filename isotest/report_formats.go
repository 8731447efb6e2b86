package isotest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// JUnit XML, in the shape CI systems (Jenkins, GitLab, GitHub test reporters)
// read: testsuites > testsuite > testcase with failure, error or skipped.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one testsuite per class, one
// testcase per attack. A leak is a failure, a harness error an error, a
// not-applicable attack skipped; a known residual passes and says so in
// system-out.
func (r *Report) WriteJUnit(w io.Writer) error {
	root := junitSuites{Name: "bulkhead isotest " + r.Mode}
	idx := map[Class]int{}
	for _, res := range r.sorted() {
		i, ok := idx[res.Class]
		if !ok {
			i = len(root.Suites)
			idx[res.Class] = i
			root.Suites = append(root.Suites, junitSuite{
				Name: "isotest." + r.Mode + "." + string(res.Class), Timestamp: r.StartedAt.Format("2006-01-02T15:04:05"),
				Properties: []junitProperty{{"mode", r.Mode}, {"postgresql", r.PostgreSQL}, {"pgx", r.Pgx}},
			})
		}
		s := &root.Suites[i]
		c := junitCase{Name: res.ID + " " + res.Title, Classname: "isotest." + string(res.Class), Time: fmt.Sprintf("%.3f", res.Duration.Seconds()),
			SystemOut: fmt.Sprintf("verdict: %s\nobserved: %s\nexpected (worst allowed in %s): %s\ntried: %s\nevidence: %s\n", res.Verdict, res.Observed, res.Mode, res.Expected, res.Action, res.Evidence)}
		if res.ResidualRisk != "" {
			c.SystemOut += "known residual: " + res.ResidualRisk + "\n"
		}
		s.Tests++
		root.Tests++
		switch res.Verdict {
		case Fail:
			c.Failure = &junitProblem{Message: fmt.Sprintf("%s: observed %s, allowed %s", res.ID, res.Observed, res.Expected), Type: string(res.Severity), Text: res.Evidence}
			s.Failures++
			root.Failures++
		case Error:
			c.Error = &junitProblem{Message: res.ID + ": the harness could not carry the attack out", Type: "error", Text: res.Evidence}
			s.Errors++
			root.Errors++
		case Skipped:
			c.Skipped = &junitProblem{Message: res.Evidence}
			s.Skipped++
		}
		s.Time = fmt.Sprintf("%.3f", mustParseFloat(s.Time)+res.Duration.Seconds())
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(root); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func mustParseFloat(s string) float64 {
	var f float64
	_, _ = fmt.Sscanf(s, "%g", &f)
	return f
}

// SARIF 2.1.0 (OASIS), the subset code-scanning dashboards read.
const (
	sarifVersion = "2.1.0"
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool      `json:"tool"`
	Results    []sarifResult  `json:"results"`
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri,omitempty"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name"`
	ShortDescription     sarifMessage    `json:"shortDescription"`
	FullDescription      sarifMessage    `json:"fullDescription"`
	DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
	Properties           map[string]any  `json:"properties,omitempty"`
	Help                 *sarifMessage   `json:"help,omitempty"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string         `json:"ruleId"`
	RuleIndex  int            `json:"ruleIndex"`
	Kind       string         `json:"kind"`
	Level      string         `json:"level"`
	Message    sarifMessage   `json:"message"`
	Properties map[string]any `json:"properties,omitempty"`
}

func sarifLevel(s Severity) string {
	switch s {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

// WriteSARIF writes the report as a SARIF 2.1.0 log: one rule per attack of
// the catalogue, one result per attack run. A leak is kind "fail" at the
// rule's level; a known residual is kind "fail" at level "note", marked
// residual; a blocked attack is kind "pass"; a harness error is kind "open".
func (r *Report) WriteSARIF(w io.Writer) error {
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "bulkhead-isotest", InformationURI: "https://github.com/bulkhead-go/bulkhead"}},
		Properties: map[string]any{
			"mode": r.Mode, "postgresql": r.PostgreSQL, "pgx": r.Pgx, "summary": r.Summary,
		},
		Results: []sarifResult{},
	}
	ruleIndex := map[string]int{}
	for _, a := range Catalogue() {
		ruleIndex[a.ID] = len(run.Tool.Driver.Rules)
		exp := map[string]string{}
		for m, o := range a.Expect {
			exp[m] = string(o)
		}
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: a.ID, Name: sarifName(a.Title), ShortDescription: sarifMessage{a.Title},
			FullDescription:      sarifMessage{a.Description},
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(a.Severity)},
			Help:                 &sarifMessage{Text: "Tried: " + a.Action},
			Properties:           map[string]any{"class": string(a.Class), "severity": string(a.Severity), "expected": exp, "tags": []string{"security", "tenant-isolation", string(a.Class)}},
		})
	}
	for _, res := range r.sorted() {
		sr := sarifResult{RuleID: res.ID, RuleIndex: ruleIndex[res.ID],
			Properties: map[string]any{"verdict": string(res.Verdict), "observed": string(res.Observed), "expected": string(res.Expected), "mode": res.Mode}}
		switch res.Verdict {
		case Fail:
			sr.Kind, sr.Level = "fail", sarifLevel(res.Severity)
			sr.Message.Text = fmt.Sprintf("LEAK: %s: observed %s, the worst allowed in %s is %s. %s", res.Title, res.Observed, res.Mode, res.Expected, res.Evidence)
		case Residual:
			sr.Kind, sr.Level = "fail", "note"
			sr.Message.Text = fmt.Sprintf("Known residual of %s: %s: %s. %s Why accepted: %s", res.Mode, res.Title, res.Observed, res.Evidence, res.ResidualRisk)
		case Error:
			sr.Kind, sr.Level = "open", "none"
			sr.Message.Text = "The harness could not carry the attack out: " + res.Evidence
		case Skipped:
			sr.Kind, sr.Level = "notApplicable", "none"
			sr.Message.Text = "Not applicable: " + res.Evidence
		default:
			sr.Kind, sr.Level = "pass", "none"
			sr.Message.Text = "Blocked: " + res.Evidence
		}
		run.Results = append(run.Results, sr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

// sarifName turns a title into a PascalCase rule name.
func sarifName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}
