package migrate_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/migrate"
)

// TestInlineRoundTrip sends inlined literals through the simple protocol, with
// standard_conforming_strings on and off, and reads them back unchanged.
func TestInlineRoundTrip(t *testing.T) {
	t.Parallel()
	db := isotest.NewDatabase(t)
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, db.SuperDSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	nasty := []string{"", "plain", "it's", `back\slash`, `\'; DROP TABLE x; --`, "$1 $2", "--", "/* x", "naïve ☃", "'''"}
	for _, scs := range []string{"on", "off"} {
		_, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs)
		require.NoError(t, err)
		for _, s := range nasty {
			sql, err := migrate.Inline("SELECT $1::text, $2::bigint, $3::boolean, $4::bigint[], $5::text -- $6 in a comment, '$1' in a string", []any{s, int64(-42), true, []int64{1, 2}, (*string)(nil)})
			require.NoError(t, err)
			res, err := conn.PgConn().Exec(ctx, sql).ReadAll()
			require.NoError(t, err, sql)
			row := res[0].Rows[0]
			require.Equal(t, s, string(row[0]), "standard_conforming_strings=%s: %s", scs, sql)
			require.Equal(t, "-42", string(row[1]))
			require.Equal(t, "t", string(row[2]))
			require.Equal(t, "{1,2}", string(row[3]))
			require.Nil(t, row[4])
		}
	}
	// A negative number after a minus sign must not turn into a comment.
	sql, err := migrate.Inline("SELECT 1-$1, 'after'", []any{int64(-5)})
	require.NoError(t, err)
	res, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	require.NoError(t, err, sql)
	require.Equal(t, "6", string(res[0].Rows[0][0]))
	require.Equal(t, "after", string(res[0].Rows[0][1]))

	_, err = migrate.Inline("SELECT $1", []any{"nul\x00byte"})
	require.Error(t, err)
	_, err = migrate.Inline("SELECT $2", []any{"one"})
	require.Error(t, err)
	_, err = migrate.Inline("SELECT $1", []any{3.14})
	require.ErrorContains(t, err, "cannot be inlined")
}
