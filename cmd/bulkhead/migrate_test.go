package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"testing/fstest"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// cli runs the bulkhead command in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFiles(t *testing.T, dir string, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, kv[i]), []byte(kv[i+1]), 0o644))
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	v1 := fstest.MapFS{"0001_items.up.sql": {Data: []byte("CREATE TABLE items (id int PRIMARY KEY, note text);")}}
	d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Migrations: v1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []tenancy.ID
	for i := range 5 {
		tn, err := d.Provisioner.Create(ctx, tenancy.ID(fmt.Sprintf("shop-%d", i)), nil)
		require.NoError(t, err)
		ids = append(ids, tn.ID)
	}
	// shop-3 has a row that the NOT NULL of version 2 rejects.
	super, err := pgx.Connect(ctx, d.DB.SuperDSN)
	require.NoError(t, err)
	defer super.Close(ctx)
	var schema string
	require.NoError(t, super.QueryRow(ctx, "SELECT schema_name FROM bulkhead.tenants WHERE id = 'shop-3'").Scan(&schema))
	_, err = super.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "items"}.Sanitize()+" VALUES (1, NULL)")
	require.NoError(t, err)

	dir := t.TempDir()
	writeFiles(t, dir,
		"0001_items.up.sql", "CREATE TABLE items (id int PRIMARY KEY, note text);",
		"0002_note_required.up.sql", "ALTER TABLE items ALTER COLUMN note SET NOT NULL;",
		"0002_note_required.down.sql", "ALTER TABLE items ALTER COLUMN note DROP NOT NULL;",
	)
	base := []string{"-dsn", d.DB.AdminDSN, "-prefix", d.DB.Prefix, "-dir", dir}

	code, out, errOut := cli(t, "migrate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "name a subcommand")
	code, _, errOut = cli(t, "migrate", "up", "-dsn", d.DB.AdminDSN)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "pass -dir")

	code, out, errOut = cli(t, append([]string{"migrate", "plan"}, base...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "5 tenant(s) to migrate up, 0 already at target")
	require.Contains(t, out, "shop-3")

	code, out, errOut = cli(t, append([]string{"migrate", "up"}, base...)...)
	require.Equal(t, 1, code, "a failed tenant makes the exit status non-zero")
	require.Contains(t, out, "FAILED TENANT")
	require.Regexp(t, `shop-3\s+1\s+23502`, out)
	require.Contains(t, out, "-resume")
	require.Regexp(t, `4 succeeded`, out)
	require.Contains(t, errOut, "progress: 5/5 tenants (4 ok, 1 failed)", "plain progress lines when stderr is not a terminal")

	code, out, _ = cli(t, append([]string{"migrate", "status"}, base...)...)
	require.Equal(t, 0, code)
	require.Regexp(t, `shop-3\s+active\s+1\s+2\s+behind\s+\d+\s+failed \(23502\)`, out)
	require.Contains(t, out, "4 up to date, 1 behind")

	_, err = super.Exec(ctx, "UPDATE "+pgx.Identifier{schema, "items"}.Sanitize()+" SET note = 'fixed'")
	require.NoError(t, err)
	code, out, errOut = cli(t, append([]string{"migrate", "up", "-resume", "last"}, base...)...)
	require.Equal(t, 0, code, out+errOut)
	require.Regexp(t, `1 succeeded`, out)
	require.Regexp(t, `4 already at target`, out)

	code, out, _ = cli(t, append([]string{"migrate", "validate"}, base...)...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "5 tenant(s) checked")

	code, out, errOut = cli(t, append([]string{"migrate", "down", "-tenants", "shop-0,shop-1"}, base...)...)
	require.Equal(t, 0, code, out+errOut)
	require.Regexp(t, `2 succeeded`, out)
	code, out, _ = cli(t, append([]string{"migrate", "plan", "-all"}, base...)...)
	require.Equal(t, 0, code)
	require.Contains(t, out, "2 tenant(s) to migrate up, 3 already at target")

	// An edited applied file is reported with what to do, not re-run.
	writeFiles(t, dir, "0002_note_required.up.sql", "ALTER TABLE items ALTER COLUMN note SET NOT NULL; -- edited")
	writeFiles(t, dir, "0003_more.up.sql", "CREATE TABLE more (id int);")
	code, out, _ = cli(t, append([]string{"migrate", "up", "-id-prefix", "shop-4"}, base...)...)
	require.Equal(t, 1, code)
	require.Contains(t, out, "was edited after it was applied")
	require.True(t, strings.Contains(out, "FAILED TENANT"))
	_ = ids
}
