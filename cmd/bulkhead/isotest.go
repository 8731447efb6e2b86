package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func init() {
	register("isotest", command{summary: "attack tenant isolation on a live deployment and write a report", run: runIsotest})
}

// Exit codes of bulkhead isotest.
const (
	exitIsotestClean = 0 // no leak beyond the mode's known residuals
	exitIsotestLeak  = 1 // at least one attack leaked, or could not be carried out
	exitUsage        = 2 // bad flags
	exitIsotestError = 3 // the audit could not run (connection, provisioning, cleanup)
)

// reportFiles maps each format to the file it is written to under -out.
var reportFiles = map[string]string{
	"text":  "isotest-report.txt",
	"json":  "isotest-report.json",
	"junit": "isotest-report.junit.xml",
	"sarif": "isotest-report.sarif",
}

func runIsotest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("isotest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	gatewayDSN := fs.String("gateway-dsn", os.Getenv("BULKHEAD_GATEWAY_DSN"), "gateway login DSN, as the application's router uses it; default $BULKHEAD_GATEWAY_DSN")
	mode := fs.String("mode", "SessionRole", "isolation mode to audit: SessionRole or TxLocal")
	formats := fs.String("format", "text", "comma-separated report formats: text, json, junit, sarif")
	out := fs.String("out", "", "directory to write the reports to (isotest-report.{txt,json,junit.xml,sarif}); default: text on stdout only")
	classes := fs.String("classes", "", "comma-separated attack classes to run (default all)")
	ids := fs.String("ids", "", "comma-separated attack IDs to run (default all)")
	stmtTimeout := fs.Duration("statement-timeout", 0, "the router's per-tenant statement timeout, as the application configures it (0: the server's setting)")
	attacker := fs.String("attacker", "", "existing tenant to attack from (default: a throwaway tenant)")
	victim := fs.String("victim", "", "existing tenant to attack (default: a throwaway tenant)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bulkhead isotest -dsn ADMIN_DSN -gateway-dsn GATEWAY_DSN [-mode SessionRole|TxLocal] [-format text,json,junit,sarif] [-out DIR]")
		fmt.Fprintln(stderr, "\nProvisions two throwaway tenants, plants canaries, attacks B from A, removes everything it created,")
		fmt.Fprintln(stderr, "and reports. Exit status: 0 no leak beyond the mode's known residuals, 1 leak or attack not carried out,")
		fmt.Fprintln(stderr, "2 bad flags, 3 the audit could not run.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "bulkhead isotest: "+format+"\n", args...)
		return exitUsage
	}
	if *gatewayDSN == "" {
		return usage("no gateway DSN: pass -gateway-dsn or set BULKHEAD_GATEWAY_DSN")
	}
	var m router.Mode
	switch *mode {
	case "SessionRole":
		m = router.SessionRole
	case "TxLocal":
		m = router.TxLocal
	default:
		return usage("-mode %q: want SessionRole or TxLocal", *mode)
	}
	var fmts []string
	for _, f := range splitList(*formats) {
		if _, ok := reportFiles[f]; !ok {
			return usage("-format %q: want text, json, junit or sarif", f)
		}
		fmts = append(fmts, f)
	}
	if len(fmts) == 0 {
		return usage("-format is empty")
	}
	if *out == "" && (len(fmts) > 1 || fmts[0] != "text") {
		return usage("-format %s needs -out DIR", *formats)
	}
	opts := &isotest.RunOpts{IDs: splitList(*ids)}
	for _, c := range splitList(*classes) {
		opts.Classes = append(opts.Classes, isotest.Class(c))
	}

	p, pool, err := a.provisioner(ctx, nil)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
		return exitIsotestError
	}
	defer pool.Close()
	r, err := router.New(ctx, *gatewayDSN, &router.Config{Mode: m, ControlSchema: a.control, StatementTimeout: *stmtTimeout, GatewayShards: a.shards})
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
		return exitIsotestError
	}
	defer r.Close()

	rep, err := isotest.Audit(ctx, &isotest.Target{
		Router: r, Provisioner: p, Admin: pool,
		Attacker: tenancy.ID(*attacker), Victim: tenancy.ID(*victim),
	}, opts)
	if errors.Is(err, isotest.ErrTarget) {
		fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
		return exitIsotestError
	}
	if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
		return exitIsotestError
	}
	if *out != "" {
		if err := writeReports(rep, *out, fmts); err != nil {
			fmt.Fprintf(stderr, "bulkhead isotest: %v\n", err)
			return exitIsotestError
		}
		fmt.Fprintf(stdout, "\nreports written to %s\n", *out)
	}
	if rep.Failed() {
		return exitIsotestLeak
	}
	return exitIsotestClean
}

func writeReports(rep *isotest.Report, dir string, formats []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range formats {
		path := filepath.Join(dir, reportFiles[f])
		fh, err := os.Create(path)
		if err != nil {
			return err
		}
		switch f {
		case "text":
			err = rep.WriteText(fh)
		case "json":
			err = rep.WriteJSON(fh)
		case "junit":
			err = rep.WriteJUnit(fh)
		case "sarif":
			err = rep.WriteSARIF(fh)
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
