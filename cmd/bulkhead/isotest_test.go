package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
)

func isotestArgs(d *isotest.Deployment, extra ...string) []string {
	return append([]string{"isotest", "-dsn", d.DB.AdminDSN, "-gateway-dsn", d.DB.GatewayDSN,
		"-prefix", d.DB.Prefix, "-gateway", d.DB.GatewayRole, "-statement-timeout", "1s"}, extra...)
}

// TestIsotestCommand: the whole catalogue against a hardened deployment in
// TxLocal mode exits 0 and writes four reports that parse.
func TestIsotestCommand(t *testing.T) {
	t.Parallel()
	d := isotest.NewDeployment(t, nil)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, isotestArgs(d, "-mode", "TxLocal", "-format", "text,json,junit,sarif", "-out", dir), &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), "VERDICT: no leak beyond the mode's known residuals")

	b, err := os.ReadFile(filepath.Join(dir, "isotest-report.json"))
	require.NoError(t, err)
	var rep isotest.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Equal(t, "TxLocal", rep.Mode)
	require.Len(t, rep.Results, len(isotest.Catalogue()))

	b, err = os.ReadFile(filepath.Join(dir, "isotest-report.junit.xml"))
	require.NoError(t, err)
	var junit struct {
		Tests int `xml:"tests,attr"`
	}
	require.NoError(t, xml.Unmarshal(b, &junit))
	require.Equal(t, len(isotest.Catalogue()), junit.Tests)

	b, err = os.ReadFile(filepath.Join(dir, "isotest-report.sarif"))
	require.NoError(t, err)
	var sarif struct {
		Version string `json:"version"`
	}
	require.NoError(t, json.Unmarshal(b, &sarif))
	require.Equal(t, "2.1.0", sarif.Version)

	text, err := os.ReadFile(filepath.Join(dir, "isotest-report.txt"))
	require.NoError(t, err)
	require.Contains(t, string(text), "Hardening found in place")
}

// TestIsotestCommandLeakExitCode: against a deployment whose gateway was made
// INHERIT, the audit reports a leak and exits 1.
func TestIsotestCommandLeakExitCode(t *testing.T) {
	t.Parallel()
	d := isotest.NewDeployment(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{d.DB.GatewayRole}.Sanitize()+" INHERIT")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	var stdout, stderr bytes.Buffer
	code := run(ctx, isotestArgs(d, "-ids", "ROLE-003,PRIV-001,XS-001"), &stdout, &stderr)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), "VERDICT: LEAKS FOUND")
	require.Contains(t, stdout.String(), "ROLE-003")
}

// TestIsotestCommandUsage: bad flags exit 2 with a message.
func TestIsotestCommandUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"isotest", "-dsn", "postgres://x", "-mode", "Nope", "-gateway-dsn", "postgres://y"},
		{"isotest", "-dsn", "postgres://x"},
		{"isotest", "-dsn", "postgres://x", "-gateway-dsn", "postgres://y", "-format", "pdf", "-out", "/tmp"},
		{"isotest", "-dsn", "postgres://x", "-gateway-dsn", "postgres://y", "-format", "json"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, &stdout, &stderr), "%v", args)
		require.Contains(t, stderr.String(), "bulkhead isotest:")
	}
}
