package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-go/bulkhead/isotest"
)

func TestMain(m *testing.M) { isotest.Main(m) }

// TestDemo runs the program as `go run ./examples/licensing` does: a
// throwaway PostgreSQL, demo tenants, the banner's tokens working against
// the served API, and a clean shutdown when the context ends.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-database-url", "", "-secret", ""}, &out, func(addr string) { ready <- addr })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo did not start within 2 minutes")
	}
	banner := out.String()
	exports := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (\w+)=(\S+)$`).FindAllStringSubmatch(banner, -1) {
		exports[m[1]] = m[2]
	}
	require.Equal(t, "http://"+addr, exports["API"])
	for _, k := range []string{"OPERATOR_TOKEN", "ACME_ADMIN", "ACME_VIEWER", "GLOBEX_ADMIN", "GLOBEX_VIEWER"} {
		require.NotEmpty(t, exports[k], k)
	}
	require.Contains(t, banner, "curl -s")

	get := func(path, token string) (int, map[string]any) {
		req, err := http.NewRequest("GET", exports["API"]+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return res.StatusCode, body
	}
	code, body := get("/api/v1/brands", exports["ACME_VIEWER"])
	require.Equal(t, 200, code)
	require.EqualValues(t, 3, body["total"])
	for _, it := range body["items"].([]any) {
		require.True(t, strings.HasPrefix(it.(map[string]any)["name"].(string), "Acme Brands"))
	}
	code, body = get("/api/v1/tenants?status=active", exports["OPERATOR_TOKEN"])
	require.Equal(t, 200, code)
	require.Len(t, body["items"], 3)
	code, _ = get("/api/v1/tenants", exports["ACME_ADMIN"])
	require.Equal(t, 403, code)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("no clean shutdown within a minute")
	}
	_, err := http.Get(exports["API"] + "/healthz")
	require.Error(t, err, "still serving after shutdown")
}

func TestFlags(t *testing.T) {
	t.Parallel()
	_, err := parseFlags([]string{"-mode", "Bogus"})
	require.ErrorContains(t, err, "SessionRole or TxLocal")
	_, err = parseFlags([]string{"-database-url", "postgres://x", "-gateway-url", ""})
	require.ErrorContains(t, err, "gateway")
	var out bytes.Buffer
	err = run(context.Background(), []string{"-mint", "-secret", "0123456789abcdef0123456789abcdef", "-mint-tenant", "acme", "-mint-roles", "admin"}, &out, nil)
	require.NoError(t, err)
	require.Len(t, strings.Split(strings.TrimSpace(out.String()), "."), 3)
	err = run(context.Background(), []string{"-mint", "-secret", "short"}, &out, nil)
	require.ErrorContains(t, err, "at least 32")
	err = run(context.Background(), []string{"-mint"}, &out, nil)
	require.ErrorContains(t, err, "-secret")
}
