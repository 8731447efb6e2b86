package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkhead-go/bulkhead/tenancy"
)

// fieldErrors collects 400 validation errors by field name.
type fieldErrors map[string]string

// bad writes a 400 with the collected errors, if any, and reports whether it did.
func (fe fieldErrors) bad(w http.ResponseWriter) bool {
	if len(fe) == 0 {
		return false
	}
	writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", fe)
	return true
}

// errNotFound is returned by handlers for a missing object. It is the same
// for "does not exist" and "belongs to another tenant": lookups go through
// the tenant's own schema, where another tenant's id simply is not found.
var errNotFound = errors.New("not found")

// conflictError is a 409 with a message for the caller.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// decode reads a JSON body into v, refusing unknown fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not the expected JSON: "+err.Error(), nil)
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body has data after the JSON object", nil)
		return false
	}
	return true
}

// parseUUID parses a path id; a malformed one is reported as not found.
func parseUUID(s string) (pgtype.UUID, bool) {
	var u pgtype.UUID
	if err := u.Scan(s); err != nil || !u.Valid {
		return u, false
	}
	return u, true
}

// page reads limit (1..100, default 20) and offset (>= 0).
func page(q map[string][]string, fe fieldErrors) (limit, offset int32) {
	limit = 20
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			fe["limit"] = "must be an integer from 1 to 100"
		}
		limit = int32(n)
	}
	if v := get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			fe["offset"] = "must be an integer from 0 to 1000000"
		}
		offset = int32(n)
	}
	return limit, offset
}

// constraintFields maps CHECK and UNIQUE constraint names of the licensing
// schema to the request field they concern.
var constraintFields = map[string]string{
	"brands_name_lower_key":                       "name",
	"licensees_name_lower_key":                    "name",
	"agreements_brand_licensee_title_key":         "title",
	"agreements_brand_id_fkey":                    "brand_id",
	"agreements_licensee_id_fkey":                 "licensee_id",
	"approvals_agreement_step_key":                "step",
	"licensees_contact_email_check":               "contact_email",
	"agreements_territory_check":                  "territory",
	"agreements_dates_check":                      "end_date",
	"agreements_minimum_guarantee_currency_check": "minimum_guarantee_currency",
	"agreements_royalty_rate_bps_check":           "royalty_rate_bps",
	"agreements_minimum_guarantee_minor_check":    "minimum_guarantee_minor",
	"licensees_country_check":                     "country",
	"brands_name_check":                           "name",
	"licensees_name_check":                        "name",
	"agreements_title_check":                      "title",
	"approvals_comment_check":                     "comment",
	"approvals_approver_check":                    "approvers",
}

// fail maps an error from a licensing handler to a response: tenant-context
// errors are 403 (the tenant is unknown, not active, or invalid), ErrBusy 503,
// not-found 404, unique and foreign-key violations 409 (or 400 when the
// foreign key is in the request), check violations 400, and anything else
// 500 with the error logged, not shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rc *reqCtx, err error) {
	var pgErr *pgconn.PgError
	var conflict *conflictError
	switch {
	case errors.Is(err, tenancy.ErrNotFound), errors.Is(err, tenancy.ErrNotActive),
		errors.Is(err, tenancy.ErrInvalidID), errors.Is(err, tenancy.ErrNoTenant):
		writeError(w, http.StatusForbidden, "tenant_context", fmt.Sprintf("tenant %q is not available", rc.Tenant), nil)
	case errors.Is(err, tenancy.ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy", "the tenant is at its connection limit; retry", nil)
	case errors.Is(err, errNotFound), errors.Is(err, pgx.ErrNoRows):
		writeError(w, http.StatusNotFound, "not_found", "not found", nil)
	case errors.As(err, &conflict):
		writeError(w, http.StatusConflict, "conflict", conflict.msg, nil)
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation:
		f := constraintFields[pgErr.ConstraintName]
		writeError(w, http.StatusConflict, "conflict", "an object with this "+f+" already exists", map[string]string{f: "already exists"})
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation:
		if r.Method == http.MethodDelete {
			writeError(w, http.StatusConflict, "conflict", "the object is still referenced (by agreements); retire it instead", nil)
		} else {
			f := constraintFields[pgErr.ConstraintName]
			writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", map[string]string{f: "not found"})
		}
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.CheckViolation:
		f := constraintFields[pgErr.ConstraintName]
		if f == "" {
			f = pgErr.ConstraintName
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "the request has invalid fields", map[string]string{f: "is invalid"})
	default:
		s.internal(w, r, err)
	}
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("internal error", "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"), "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log (request id in X-Request-Id)", nil)
}
