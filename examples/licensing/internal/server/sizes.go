package server

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

type schemaSize struct{ bytes, objects int64 }

// schemaSizes measures schemas on the admin pool: the total size (heap,
// TOAST, indexes) of their tables and materialized views, and the number of
// relations. Schemas that do not exist are absent from the result.
func (s *Server) schemaSizes(ctx context.Context, schemas []string) (map[string]schemaSize, error) {
	rows, err := s.cfg.Admin.Query(ctx, `
SELECT n.nspname,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relkind IN ('r', 'm', 'p')), 0)::bigint,
       count(c.oid)
FROM pg_namespace n
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'i', 'S', 'v', 'm', 'p', 'I')
WHERE n.nspname = ANY($1)
GROUP BY n.nspname`, schemas)
	if err != nil {
		return nil, err
	}
	out := map[string]schemaSize{}
	var name string
	var sz schemaSize
	_, err = pgx.ForEachRow(rows, []any{&name, &sz.bytes, &sz.objects}, func() error {
		out[name] = sz
		return nil
	})
	return out, err
}

// refreshSizes updates the schema size gauges of active tenants every
// SizeRefresh, until Close.
func (s *Server) refreshSizes() {
	t := time.NewTicker(s.cfg.SizeRefresh)
	defer t.Stop()
	for {
		s.refreshSizesOnce()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Server) refreshSizesOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &provision.ListOpts{Status: tenancy.StatusActive, Limit: 1000}
	for {
		res, err := s.cfg.Provisioner.List(ctx, opts)
		if err != nil {
			s.log.Warn("refreshing schema sizes", "err", err)
			return
		}
		schemas := make([]string, 0, len(res.Tenants))
		ids := map[string]tenancy.ID{}
		for _, t := range res.Tenants {
			schemas = append(schemas, t.Schema)
			ids[t.Schema] = t.ID
		}
		sizes, err := s.schemaSizes(ctx, schemas)
		if err != nil {
			s.log.Warn("refreshing schema sizes", "err", err)
			return
		}
		for schema, sz := range sizes {
			s.m.schemaSize.WithLabelValues(string(ids[schema])).Set(float64(sz.bytes))
			s.m.schemaObjs.WithLabelValues(string(ids[schema])).Set(float64(sz.objects))
		}
		if res.Next == "" {
			return
		}
		opts.After = res.Next
	}
}
