// Command licensing is the reference brand-licensing server on bulkhead: JWT
// tenant context, per-tenant RBAC, a management API for platform operators,
// the licensing API on tenant-scoped connections, an audit trail, Prometheus
// metrics and an OpenAPI description.
//
//	go run ./examples/licensing
//
// Without DATABASE_URL it starts a throwaway PostgreSQL from the local
// binaries, provisions three demo tenants with sample data and prints demo
// tokens and curl commands; everything is dropped on exit. With DATABASE_URL
// (the admin / provisioning login) and GATEWAY_DATABASE_URL (the gateway
// login) it serves that database and provisions nothing unless asked (-init,
// -demo).
//
// Flags (each also read from the environment variable in brackets):
//
//	-addr            listen address [LICENSING_ADDR] (default 127.0.0.1:8080)
//	-database-url    admin DSN [DATABASE_URL]
//	-gateway-url     gateway DSN [GATEWAY_DATABASE_URL]
//	-mode            SessionRole or TxLocal [LICENSING_MODE]
//	-secret          master secret, >= 32 bytes [LICENSING_SECRET]; default random (ephemeral mode only)
//	-prefix          role/schema prefix of the deployment [BULKHEAD_PREFIX] (default bh)
//	-gateway-role    gateway role name [BULKHEAD_GATEWAY_ROLE] (default <prefix>_gateway)
//	-init            run provision.Init on DATABASE_URL before serving
//	-demo            provision the demo tenants on DATABASE_URL too
//	-log-json        JSON logs instead of text
//	-isotest-report  isotest JSON report shown by the admin console [LICENSING_ISOTEST_REPORT]
//	-mint            print a token and exit: -mint-tenant, -mint-sub, -mint-roles, -mint-ttl
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/examples/licensing/console"
	"github.com/bulkhead-go/bulkhead/examples/licensing/internal/server"
	"github.com/bulkhead-go/bulkhead/isotest"
	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/router"
	bsql "github.com/bulkhead-go/bulkhead/sql"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, nil)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "licensing:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type options struct {
	addr, dbURL, gwURL, mode, secret, prefix, gwRole string
	init, demo, logJSON                              bool
	isotestReport                                    string
	mint                                             bool
	mintTenant, mintSub, mintRoles                   string
	mintTTL                                          time.Duration
	statementTimeout                                 time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	flag := flag.NewFlagSet("licensing", flag.ContinueOnError)
	flag.StringVar(&o.addr, "addr", env("LICENSING_ADDR", "127.0.0.1:8080"), "listen address [LICENSING_ADDR]")
	flag.StringVar(&o.dbURL, "database-url", env("DATABASE_URL", ""), "admin (provisioning) DSN; empty starts a throwaway PostgreSQL [DATABASE_URL]")
	flag.StringVar(&o.gwURL, "gateway-url", env("GATEWAY_DATABASE_URL", ""), "gateway DSN, required with -database-url [GATEWAY_DATABASE_URL]")
	flag.StringVar(&o.mode, "mode", env("LICENSING_MODE", "SessionRole"), "isolation mode: SessionRole or TxLocal [LICENSING_MODE]")
	flag.StringVar(&o.secret, "secret", env("LICENSING_SECRET", ""), "master secret for token keys, at least 32 bytes; default random in ephemeral mode [LICENSING_SECRET]")
	flag.StringVar(&o.prefix, "prefix", env("BULKHEAD_PREFIX", tenancy.DefaultPrefix), "role and schema prefix of the deployment [BULKHEAD_PREFIX]")
	flag.StringVar(&o.gwRole, "gateway-role", env("BULKHEAD_GATEWAY_ROLE", ""), "gateway role name; default <prefix>_gateway [BULKHEAD_GATEWAY_ROLE]")
	flag.DurationVar(&o.statementTimeout, "statement-timeout", 5*time.Second, "statement timeout of every tenant connection unless the tenant's limits set one; 0 disables it")
	flag.BoolVar(&o.init, "init", false, "run provision.Init (control schema, hardening) on -database-url first")
	flag.BoolVar(&o.demo, "demo", false, "provision the demo tenants on -database-url too")
	flag.BoolVar(&o.logJSON, "log-json", os.Getenv("LICENSING_LOG_JSON") != "", "log JSON instead of text [LICENSING_LOG_JSON]")
	flag.StringVar(&o.isotestReport, "isotest-report", env("LICENSING_ISOTEST_REPORT", ""), "isotest JSON report file the admin console's security view shows, re-read on each request [LICENSING_ISOTEST_REPORT]")
	flag.BoolVar(&o.mint, "mint", false, "print a token signed with -secret and exit")
	flag.StringVar(&o.mintTenant, "mint-tenant", "", "tenant of the minted token; empty mints an operator token")
	flag.StringVar(&o.mintSub, "mint-sub", "cli", "subject of the minted token")
	flag.StringVar(&o.mintRoles, "mint-roles", "admin", "comma-separated roles of the minted token (operator tokens: operator)")
	flag.DurationVar(&o.mintTTL, "mint-ttl", time.Hour, "lifetime of the minted token, at most 24h")
	if err := flag.Parse(args); err != nil {
		return nil, err
	}
	if o.mode != "SessionRole" && o.mode != "TxLocal" {
		return nil, fmt.Errorf("-mode %q: want SessionRole or TxLocal", o.mode)
	}
	if o.dbURL != "" && o.gwURL == "" {
		return nil, errors.New("-database-url needs -gateway-url (GATEWAY_DATABASE_URL): the request path runs as the gateway login, never as the admin")
	}
	return o, nil
}

// run serves until ctx is done. stdout receives the banner and minted
// tokens; ready, if not nil, is called with the listening address once the
// server accepts requests.
func run(ctx context.Context, args []string, stdout io.Writer, ready func(addr string)) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if o.logJSON {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)

	secret := []byte(o.secret)
	if len(secret) == 0 {
		if o.dbURL != "" || o.mint {
			return errors.New("set -secret (LICENSING_SECRET, at least 32 bytes): tokens must survive restarts of a real deployment")
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = []byte(hex.EncodeToString(b))
	}
	keys, err := server.NewKeys(secret)
	if err != nil {
		return fmt.Errorf("-secret: %w", err)
	}
	if o.mint {
		var roles []server.Role
		for _, r := range strings.Split(o.mintRoles, ",") {
			roles = append(roles, server.Role(strings.TrimSpace(r)))
		}
		tok, err := keys.Mint(server.MintOpts{Tenant: tenancy.ID(o.mintTenant), Subject: o.mintSub, Roles: roles, TTL: o.mintTTL})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, tok)
		return err
	}

	metrics := server.NewMetrics()
	// Every tenant gets a statement timeout unless its limits say otherwise,
	// so one tenant's runaway query cannot hold a connection forever
	// (isotest DOS-001).
	rcfg := router.Config{Tracer: metrics, StatementTimeout: o.statementTimeout}
	if o.mode == "TxLocal" {
		rcfg.Mode = router.TxLocal
	}

	var (
		admin *pgxpool.Pool
		prov  *provision.Provisioner
		rtr   *router.Router
		demo  = o.demo
		irep  *provision.InitReport
	)
	if o.dbURL == "" {
		fmt.Fprintln(os.Stderr, "no DATABASE_URL: starting a throwaway PostgreSQL (BULKHEAD_TEST_DSN to use your own server)...")
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		srv, err := isotest.StartServer(sctx, &isotest.ServerOpts{Log: os.Stderr})
		if err != nil {
			return err
		}
		defer srv.Close()
		d, err := isotest.StartDeployment(sctx, srv, &isotest.DeploymentOpts{Migrations: bsql.LicensingMigrations(), Router: rcfg})
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := d.Close(cctx); err != nil {
				log.Error("dropping the demo database", "err", err)
			}
		}()
		admin, prov, rtr, demo, irep = d.Admin, d.Provisioner, d.Router, true, d.InitReport
	} else {
		if admin, err = pgxpool.New(ctx, o.dbURL); err != nil {
			return fmt.Errorf("admin pool: %w", err)
		}
		defer admin.Close()
		prov, err = provision.New(admin, &provision.Config{Naming: tenancy.Naming{Prefix: o.prefix}, GatewayRole: o.gwRole, Migrations: bsql.LicensingMigrations()})
		if err != nil {
			return err
		}
		if o.init {
			rep, err := prov.Init(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "provision.Init:\n%s\n", rep)
			irep = rep
		}
		if rtr, err = router.New(ctx, o.gwURL, &rcfg); err != nil {
			return err
		}
		defer rtr.Close()
	}

	srv, err := server.New(server.Config{Provisioner: prov, Router: rtr, Admin: admin, Keys: keys, Metrics: metrics, Logger: log,
		Console: console.FS(), InitReport: irep, IsotestReport: o.isotestReport})
	if err != nil {
		return err
	}
	if demo {
		for _, t := range server.DemoTenants {
			if _, err := server.Seed(ctx, prov, server.RouterStore{R: rtr}, t.ID, t.Name, 3); err != nil {
				if errors.Is(err, tenancy.ErrExists) {
					continue
				}
				return err
			}
		}
	}
	srv.Start()
	defer srv.Close()

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "mode", rtr.Mode().String())
	if demo {
		if err := printBanner(stdout, keys, "http://"+ln.Addr().String(), o.dbURL == ""); err != nil {
			return err
		}
	}
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
	}
	return nil
}

func printBanner(w io.Writer, keys *server.Keys, base string, ephemeral bool) error {
	mint := func(t tenancy.ID, sub string, roles ...server.Role) string {
		tok, err := keys.Mint(server.MintOpts{Tenant: t, Subject: sub, Roles: roles, TTL: 12 * time.Hour})
		if err != nil {
			panic(err)
		}
		return tok
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nbrand-licensing reference server on %s\n", base)
	if ephemeral {
		b.WriteString("(throwaway PostgreSQL; everything is dropped on Ctrl-C; tokens are valid for 12 h and only for this run)\n")
	}
	b.WriteString("\nDemo tenants: ")
	for i, t := range server.DemoTenants {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t.ID))
	}
	b.WriteString("\n\nPaste these into another shell:\n\n")
	fmt.Fprintf(&b, "export API=%s\n", base)
	fmt.Fprintf(&b, "export OPERATOR_TOKEN=%s\n", mint("", "ops", server.RoleOperator))
	fmt.Fprintf(&b, "export ACME_ADMIN=%s\n", mint("acme-brands", "alice", server.RoleAdmin))
	fmt.Fprintf(&b, "export ACME_VIEWER=%s\n", mint("acme-brands", "victor", server.RoleViewer))
	fmt.Fprintf(&b, "export GLOBEX_ADMIN=%s\n", mint("globex-licensing", "grace", server.RoleAdmin))
	fmt.Fprintf(&b, "export GLOBEX_VIEWER=%s\n", mint("globex-licensing", "gus", server.RoleViewer))
	b.WriteString("\nThen, for example:\n\n")
	b.WriteString(`curl -s -H "Authorization: Bearer $ACME_VIEWER" $API/api/v1/brands` + "\n")
	b.WriteString(`curl -s -H "Authorization: Bearer $OPERATOR_TOKEN" "$API/api/v1/tenants?status=active"` + "\n")
	b.WriteString("\nMore in the README, section \"The reference server\"; OpenAPI at $API/openapi.json, metrics at $API/metrics.\n")
	fmt.Fprintf(&b, "Admin console: %s/admin/ (sign in with $OPERATOR_TOKEN)\n\n", base)
	_, err := io.WriteString(w, b.String())
	return err
}
