package isotest_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/router"
)

// routerConfig is the router configuration the suite runs against: a
// statement timeout (DOS-001 requires one) and a short acquire timeout, so
// the checkout-cap attack does not wait long.
func routerConfig(mode router.Mode) router.Config {
	return router.Config{Mode: mode, StatementTimeout: time.Second, AcquireTimeout: time.Second}
}

// TestSuiteAgainstRouter runs the whole catalogue against bulkhead's router
// in every implemented mode: every attack must be blocked or stay within
// its mode's documented residual.
func TestSuiteAgainstRouter(t *testing.T) {
	t.Parallel()
	for _, mode := range []router.Mode{router.SessionRole, router.TxLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			d := isotest.NewDeployment(t, &isotest.DeploymentOpts{Router: routerConfig(mode)})
			rep := isotest.Run(t, &isotest.Target{Router: d.Router, Provisioner: d.Provisioner, Admin: d.Admin}, nil)
			require.NotNil(t, rep)
			if os.Getenv("ISOTEST_PRINT") != "" {
				_ = rep.WriteText(os.Stdout)
			}
		})
	}
}
