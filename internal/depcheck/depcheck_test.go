package depcheck

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// allowed are the only non-standard-library module paths a library package
// may depend on.
var allowed = []string{
	"github.com/bulkhead-go/bulkhead/",
	"github.com/jackc/pgx/v5",
	"github.com/jackc/pgerrcode",
	"github.com/jackc/pgpassfile",
	"github.com/jackc/pgservicefile",
	"github.com/jackc/puddle/v2",
	"golang.org/x/text/",
	"golang.org/x/sync/",
}

func TestLibraryDependenciesStayLean(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"tenancy", "router", "provision", "migrate", "isotest", "sql"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/bulkhead-go/bulkhead/"+pkg).CombinedOutput()
		require.NoError(t, err, string(out))
		for _, dep := range strings.Fields(string(out)) {
			if !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || strings.HasPrefix(dep, a) || dep == strings.TrimSuffix(a, "/")
			}
			require.True(t, ok, "package %s depends on %s; keep heavy dependencies out of the library (put them in a subpackage users opt into, examples/ or cmd/)", pkg, dep)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/bulkhead-go/bulkhead/tenancy").CombinedOutput()
	require.NoError(t, err)
	require.NotContains(t, string(out), "jackc", "tenancy must not depend on pgx")
}
