package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func init() {
	register("init", command{summary: "create the control schema and harden the database (idempotent)", run: runInit})
}

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	dsn, prefix, gateway, control string
	shards                        int
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.dsn, "dsn", os.Getenv("DATABASE_URL"), "admin (provisioning) DSN; default $DATABASE_URL")
	fs.StringVar(&a.prefix, "prefix", tenancy.DefaultPrefix, "role and schema name prefix")
	fs.StringVar(&a.gateway, "gateway", "", "gateway login role (default <prefix>_gateway)")
	fs.StringVar(&a.control, "control-schema", "bulkhead", "control-plane schema")
	fs.IntVar(&a.shards, "gateway-shards", 0, "gateway shard logins (provision.Config.GatewayShards); every command on a sharded deployment needs the same value")
}

func (a *adminFlags) provisioner(ctx context.Context, cfg *provision.Config) (*provision.Provisioner, *pgxpool.Pool, error) {
	if a.dsn == "" {
		return nil, nil, fmt.Errorf("no admin DSN: pass -dsn or set DATABASE_URL")
	}
	pool, err := pgxpool.New(ctx, a.dsn)
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		cfg = &provision.Config{}
	}
	cfg.Naming = tenancy.Naming{Prefix: a.prefix}
	cfg.GatewayRole = a.gateway
	cfg.ControlSchema = a.control
	cfg.GatewayShards = a.shards
	p, err := provision.New(pool, cfg)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return p, pool, nil
}

func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a adminFlags
	a.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p, pool, err := a.provisioner(ctx, nil)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead init: %v\n", err)
		return 1
	}
	defer pool.Close()
	rep, err := p.Init(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead init: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep)
	if n := len(rep.NotApplied()); n > 0 {
		fmt.Fprintf(stdout, "\n%d hardening item(s) need more privilege; run the statements above as the role named.\n", n)
	}
	return 0
}
