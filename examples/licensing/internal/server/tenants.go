package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bulkhead-go/bulkhead/provision"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// tenantView is a tenant as the management API shows it.
type tenantView struct {
	*tenancy.Tenant
	Settings json.RawMessage `json:"settings"`
}

// limitsInput is tenancy.Limits with the statement timeout in milliseconds.
type limitsInput struct {
	MaxConns           int   `json:"max_conns"`
	StatementTimeoutMS int64 `json:"statement_timeout_ms"`
}

func (l *limitsInput) limits() tenancy.Limits {
	return tenancy.Limits{MaxConns: l.MaxConns, StatementTimeout: time.Duration(l.StatementTimeoutMS) * time.Millisecond}
}

type tenantCreate struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Limits   *limitsInput    `json:"limits"`
	Settings json.RawMessage `json:"settings"`
}

type tenantPatch struct {
	Name     *string         `json:"name"`
	Limits   *limitsInput    `json:"limits"`
	Settings json.RawMessage `json:"settings"`
}

// tenantFail maps provisioning errors.
func (s *Server) tenantFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, tenancy.ErrInvalidID):
		writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", map[string]string{"id": err.Error()})
	case errors.Is(err, tenancy.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such tenant", nil)
	case errors.Is(err, tenancy.ErrExists):
		writeError(w, http.StatusConflict, "conflict", err.Error(), nil)
	case errors.Is(err, tenancy.ErrInvalidTransition), errors.Is(err, tenancy.ErrRetentionExpired):
		writeError(w, http.StatusConflict, "conflict", err.Error(), nil)
	default:
		s.internal(w, r, err)
	}
}

// settings reads the tenant's free-form settings, which tenancy.Tenant does
// not carry (an admin-side read of the control schema, example code only).
func (s *Server) settings(ctx context.Context, id tenancy.ID) json.RawMessage {
	var b []byte
	cs := s.cfg.Provisioner.Config().ControlSchema
	err := s.cfg.Admin.QueryRow(ctx, "SELECT settings FROM "+quoteIdent(cs)+".tenants WHERE id = $1", string(id)).Scan(&b)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

func (s *Server) view(ctx context.Context, t *tenancy.Tenant) tenantView {
	return tenantView{Tenant: t, Settings: s.settings(ctx, t.ID)}
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in tenantCreate
	if !decode(w, r, &in) {
		return
	}
	s.provisionTenant(w, r, in)
}

// provisionSchema serves POST /api/v1/tenants/{id}/schema: bulkhead
// provisions the catalog row and the schema in one transaction (a failed
// provision leaves nothing), so this is tenant creation with the ID in the
// path; an existing tenant is a 409.
func (s *Server) provisionSchema(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in tenantCreate
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	if in.ID != "" && in.ID != r.PathValue("id") {
		writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", map[string]string{"id": "differs from the path"})
		return
	}
	in.ID = r.PathValue("id")
	s.provisionTenant(w, r, in)
}

func (s *Server) provisionTenant(w http.ResponseWriter, r *http.Request, in tenantCreate) {
	fe := fieldErrors{}
	id, err := tenancy.ParseID(in.ID)
	if err != nil {
		fe["id"] = err.Error()
	}
	if len(in.Name) > 200 {
		fe["name"] = "at most 200 bytes"
	}
	opts := &provision.CreateOpts{Name: in.Name, Settings: in.Settings}
	if in.Limits != nil {
		opts.Limits = in.Limits.limits()
		if err := opts.Limits.Validate(); err != nil {
			fe["limits"] = err.Error()
		}
	}
	if in.Settings != nil && !isObject(in.Settings) {
		fe["settings"] = "must be a JSON object"
	}
	if fe.bad(w) {
		return
	}
	t, err := s.cfg.Provisioner.Create(r.Context(), id, opts)
	if err != nil {
		s.tenantFail(w, r, err)
		return
	}
	s.cfg.Router.Invalidate(id)
	writeJSON(w, http.StatusCreated, s.view(r.Context(), t))
}

func isObject(b json.RawMessage) bool {
	var m map[string]any
	return json.Unmarshal(b, &m) == nil && m != nil
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	fe := fieldErrors{}
	opts := &provision.ListOpts{Limit: 50}
	if st := q.Get("status"); st != "" {
		if !tenancy.Status(st).Valid() {
			fe["status"] = "must be one of provisioning, active, suspended, archived, deleted"
		}
		opts.Status = tenancy.Status(st)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fe["limit"] = "must be an integer from 1 to 1000"
		}
		opts.Limit = n
	}
	if v := q.Get("after"); v != "" {
		id, err := tenancy.ParseID(v)
		if err != nil {
			fe["after"] = err.Error()
		}
		opts.After = id
	}
	if fe.bad(w) {
		return
	}
	res, err := s.cfg.Provisioner.List(r.Context(), opts)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := []*tenancy.Tenant{}
	items = append(items, res.Tenants...)
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next": string(res.Next)})
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	t, err := s.cfg.Provisioner.Get(r.Context(), tenancy.ID(r.PathValue("id")))
	if err != nil {
		if errors.Is(err, tenancy.ErrInvalidID) {
			err = &tenancy.NotFoundError{ID: tenancy.ID(r.PathValue("id"))}
		}
		s.tenantFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(r.Context(), t))
}

func (s *Server) patchTenant(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in tenantPatch
	if !decode(w, r, &in) {
		return
	}
	fe := fieldErrors{}
	opts := provision.UpdateOpts{Name: in.Name, Settings: in.Settings}
	if in.Name != nil && len(*in.Name) > 200 {
		fe["name"] = "at most 200 bytes"
	}
	if in.Limits != nil {
		l := in.Limits.limits()
		if err := l.Validate(); err != nil {
			fe["limits"] = err.Error()
		}
		opts.Limits = &l
	}
	if in.Settings != nil && !isObject(in.Settings) {
		fe["settings"] = "must be a JSON object"
	}
	if fe.bad(w) {
		return
	}
	id := tenancy.ID(r.PathValue("id"))
	t, err := s.cfg.Provisioner.Update(r.Context(), id, opts)
	if err != nil {
		s.tenantFail(w, r, err)
		return
	}
	s.cfg.Router.Invalidate(id)
	writeJSON(w, http.StatusOK, s.view(r.Context(), t))
}

// lifecycle returns the handler of a status transition. The provisioner
// records the audit event (actor from the context) in the same transaction.
func (s *Server) lifecycle(op string) func(http.ResponseWriter, *http.Request, *reqCtx) {
	return func(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
		id := tenancy.ID(r.PathValue("id"))
		p := s.cfg.Provisioner
		var t *tenancy.Tenant
		var err error
		switch op {
		case "activate":
			t, err = p.Activate(r.Context(), id)
		case "suspend":
			t, err = p.Suspend(r.Context(), id)
		case "archive":
			t, err = p.Archive(r.Context(), id)
		case "restore":
			t, err = p.Restore(r.Context(), id)
		case "delete":
			opts := &provision.DeleteOpts{}
			if v := r.URL.Query().Get("retention"); v != "" {
				d, perr := time.ParseDuration(v)
				if perr != nil || d <= 0 {
					writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", map[string]string{"retention": "must be a positive Go duration, e.g. 720h"})
					return
				}
				opts.Retention = d
			}
			t, err = p.Delete(r.Context(), id, opts)
		default:
			panic("unknown lifecycle op " + op)
		}
		if err != nil {
			s.tenantFail(w, r, err)
			return
		}
		s.cfg.Router.Invalidate(id)
		rc.log.Info("tenant lifecycle", "op", op, "target", string(id), "status", string(t.Status))
		writeJSON(w, http.StatusOK, s.view(r.Context(), t))
	}
}

// schemaStatus is GET /api/v1/tenants/{id}/schema/status.
type schemaStatus struct {
	Tenant        tenancy.ID     `json:"tenant"`
	Status        tenancy.Status `json:"status"`
	Schema        string         `json:"schema"`
	SchemaVersion int64          `json:"schema_version"`
	LatestVersion int64          `json:"latest_version"`
	SizeBytes     int64          `json:"size_bytes"`
	Objects       int64          `json:"objects"`
	Exists        bool           `json:"exists"`
	RetainUntil   *time.Time     `json:"retain_until,omitempty"`
}

func (s *Server) schemaStatus(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := tenancy.ID(r.PathValue("id"))
	t, err := s.cfg.Provisioner.Get(r.Context(), id)
	if err != nil {
		if errors.Is(err, tenancy.ErrInvalidID) {
			err = &tenancy.NotFoundError{ID: id}
		}
		s.tenantFail(w, r, err)
		return
	}
	st := schemaStatus{Tenant: t.ID, Status: t.Status, Schema: t.Schema, SchemaVersion: t.SchemaVersion, RetainUntil: t.RetainUntil}
	for _, m := range s.cfg.Provisioner.Migrations() {
		st.LatestVersion = max(st.LatestVersion, m.Version)
	}
	sizes, err := s.schemaSizes(r.Context(), []string{t.Schema})
	if err != nil {
		s.internal(w, r, fmt.Errorf("measuring schema of %q: %w", id, err))
		return
	}
	if sz, ok := sizes[t.Schema]; ok {
		st.Exists, st.SizeBytes, st.Objects = true, sz.bytes, sz.objects
	}
	writeJSON(w, http.StatusOK, st)
}
