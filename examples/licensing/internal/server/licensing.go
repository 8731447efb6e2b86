package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkhead-go/bulkhead/examples/licensing/licensingdb"
	"github.com/bulkhead-go/bulkhead/tenancy"
)

// The licensing API. Every handler runs its queries through the sqlc
// repositories on a handle scoped to the request's tenant (s.store), so an id
// of another tenant's object is simply not found in this tenant's schema.

var (
	countryRe  = regexp.MustCompile(`^[A-Z]{2}$`)
	currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)
	emailRe    = regexp.MustCompile(`^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$`)
)

func checkName(fe fieldErrors, field, v string) {
	if v != strings.TrimSpace(v) || len(v) < 1 || len(v) > 200 {
		fe[field] = "must be 1 to 200 characters without leading or trailing spaces"
	}
}

func oneOf(fe fieldErrors, field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	fe[field] = "must be one of " + strings.Join(allowed, ", ")
}

func optional(q map[string][]string, k string) *string {
	if v := q[k]; len(v) > 0 && v[0] != "" {
		return &v[0]
	}
	return nil
}

type list[T any] struct {
	Items  []T   `json:"items"`
	Total  int64 `json:"total"`
	Limit  int32 `json:"limit"`
	Offset int32 `json:"offset"`
}

// ---- brands ----

type brandInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Status      *string `json:"status"`
}

func (in *brandInput) validate(create bool) fieldErrors {
	fe := fieldErrors{}
	if in.Name == nil {
		if create {
			fe["name"] = "is required"
		}
	} else {
		checkName(fe, "name", *in.Name)
	}
	if in.Description != nil && len(*in.Description) > 4000 {
		fe["description"] = "at most 4000 characters"
	}
	if in.Status != nil {
		if create {
			fe["status"] = "is set by the server on create"
		} else {
			oneOf(fe, "status", *in.Status, "active", "retired")
		}
	}
	return fe
}

func (s *Server) createBrand(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in brandInput
	if !decode(w, r, &in) || in.validate(true).bad(w) {
		return
	}
	var b licensingdb.Brand
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) (err error) {
		b, err = licensingdb.New(tx).CreateBrand(r.Context(), licensingdb.CreateBrandParams{Name: *in.Name, Description: in.Description})
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "brand.create", uuidString(b.ID), nil)
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) listBrands(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	fe := fieldErrors{}
	limit, offset := page(q, fe)
	status := optional(q, "status")
	if status != nil {
		oneOf(fe, "status", *status, "active", "retired")
	}
	if fe.bad(w) {
		return
	}
	respondRead(s, w, r, rc, func(qs *licensingdb.Queries) (out list[licensingdb.Brand], err error) {
		out = list[licensingdb.Brand]{Limit: limit, Offset: offset}
		f := licensingdb.ListBrandsParams{Status: status, NamePrefix: optional(q, "name_prefix"), Limit: limit, Offset: offset}
		if out.Items, err = qs.ListBrands(r.Context(), f); err != nil {
			return out, err
		}
		out.Total, err = qs.CountBrands(r.Context(), licensingdb.CountBrandsParams{Status: f.Status, NamePrefix: f.NamePrefix})
		return out, err
	})
}

func (s *Server) getBrand(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	readByID(s, w, r, rc, (*licensingdb.Queries).GetBrand)
}

func (s *Server) patchBrand(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in brandInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok || in.validate(false).bad(w) {
		return
	}
	var b licensingdb.Brand
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		cur, err := q.GetBrand(r.Context(), id)
		if err != nil {
			return err
		}
		p := licensingdb.UpdateBrandParams{ID: id, Name: cur.Name, Description: cur.Description, Status: cur.Status}
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.Description != nil {
			p.Description = in.Description
		}
		if in.Status != nil {
			p.Status = *in.Status
		}
		b, err = q.UpdateBrand(r.Context(), p)
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "brand.update", uuidString(id), nil)
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) deleteBrand(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.deleteObject(w, r, rc, "brand", func(q *licensingdb.Queries, id pgtype.UUID) (int64, error) {
		return q.DeleteBrand(r.Context(), id)
	})
}

func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request, rc *reqCtx, kind string, del func(*licensingdb.Queries, pgtype.UUID) (int64, error)) {
	id, ok := parseUUID(r.PathValue("id"))
	if !ok {
		s.fail(w, r, rc, errNotFound)
		return
	}
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		n, err := del(licensingdb.New(tx), id)
		if err == nil && n == 0 {
			err = errNotFound
		}
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, kind+".delete", uuidString(id), nil)
	w.WriteHeader(http.StatusNoContent)
}

func uuidString(u pgtype.UUID) string {
	v, _ := u.Value()
	s, _ := v.(string)
	return s
}

// ---- licensees ----

type licenseeInput struct {
	Name         *string `json:"name"`
	ContactEmail *string `json:"contact_email"`
	Country      *string `json:"country"`
	Status       *string `json:"status"`
}

func (in *licenseeInput) validate(create bool) fieldErrors {
	fe := fieldErrors{}
	if in.Name != nil {
		checkName(fe, "name", *in.Name)
	} else if create {
		fe["name"] = "is required"
	}
	if in.ContactEmail != nil {
		if len(*in.ContactEmail) > 254 || !emailRe.MatchString(*in.ContactEmail) {
			fe["contact_email"] = "must be an e-mail address"
		}
	} else if create {
		fe["contact_email"] = "is required"
	}
	if in.Country != nil {
		if !countryRe.MatchString(*in.Country) {
			fe["country"] = "must be an ISO 3166-1 alpha-2 code in upper case, e.g. GB"
		}
	} else if create {
		fe["country"] = "is required"
	}
	if in.Status != nil {
		if create {
			fe["status"] = "is set by the server on create"
		} else {
			oneOf(fe, "status", *in.Status, "active", "suspended", "inactive")
		}
	}
	return fe
}

func (s *Server) createLicensee(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in licenseeInput
	if !decode(w, r, &in) || in.validate(true).bad(w) {
		return
	}
	var l licensingdb.Licensee
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) (err error) {
		l, err = licensingdb.New(tx).CreateLicensee(r.Context(), licensingdb.CreateLicenseeParams{Name: *in.Name, ContactEmail: *in.ContactEmail, Country: *in.Country})
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "licensee.create", uuidString(l.ID), nil)
	writeJSON(w, http.StatusCreated, l)
}

func (s *Server) listLicensees(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	fe := fieldErrors{}
	limit, offset := page(q, fe)
	status, country := optional(q, "status"), optional(q, "country")
	if status != nil {
		oneOf(fe, "status", *status, "active", "suspended", "inactive")
	}
	if country != nil && !countryRe.MatchString(*country) {
		fe["country"] = "must be an ISO 3166-1 alpha-2 code in upper case"
	}
	if fe.bad(w) {
		return
	}
	respondRead(s, w, r, rc, func(qs *licensingdb.Queries) (out list[licensingdb.Licensee], err error) {
		out = list[licensingdb.Licensee]{Limit: limit, Offset: offset}
		f := licensingdb.ListLicenseesParams{Status: status, Country: country, NamePrefix: optional(q, "name_prefix"), Limit: limit, Offset: offset}
		if out.Items, err = qs.ListLicensees(r.Context(), f); err != nil {
			return out, err
		}
		out.Total, err = qs.CountLicensees(r.Context(), licensingdb.CountLicenseesParams{Status: f.Status, Country: f.Country, NamePrefix: f.NamePrefix})
		return out, err
	})
}

func (s *Server) getLicensee(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	readByID(s, w, r, rc, (*licensingdb.Queries).GetLicensee)
}

func (s *Server) patchLicensee(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in licenseeInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok || in.validate(false).bad(w) {
		return
	}
	var l licensingdb.Licensee
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		cur, err := q.GetLicensee(r.Context(), id)
		if err != nil {
			return err
		}
		p := licensingdb.UpdateLicenseeParams{ID: id, Name: cur.Name, ContactEmail: cur.ContactEmail, Country: cur.Country, Status: cur.Status}
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.ContactEmail != nil {
			p.ContactEmail = *in.ContactEmail
		}
		if in.Country != nil {
			p.Country = *in.Country
		}
		if in.Status != nil {
			p.Status = *in.Status
		}
		l, err = q.UpdateLicensee(r.Context(), p)
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "licensee.update", uuidString(id), nil)
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) deleteLicensee(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.deleteObject(w, r, rc, "licensee", func(q *licensingdb.Queries, id pgtype.UUID) (int64, error) {
		return q.DeleteLicensee(r.Context(), id)
	})
}

// ---- agreements ----

// agreementInput is the body of POST (all term fields required) and PATCH
// (version required, the rest optional) /api/v1/agreements.
type agreementInput struct {
	BrandID                  *string  `json:"brand_id"`
	LicenseeID               *string  `json:"licensee_id"`
	Title                    *string  `json:"title"`
	Territory                []string `json:"territory"`
	StartDate                *string  `json:"start_date"`
	EndDate                  *string  `json:"end_date"`
	RoyaltyRateBps           *int32   `json:"royalty_rate_bps"`
	MinimumGuaranteeMinor    *int64   `json:"minimum_guarantee_minor"`
	MinimumGuaranteeCurrency *string  `json:"minimum_guarantee_currency"`
	Version                  *int32   `json:"version"`
}

func parseDate(fe fieldErrors, field string, v *string) pgtype.Date {
	if v == nil {
		return pgtype.Date{}
	}
	t, err := time.Parse(time.DateOnly, *v)
	if err != nil {
		fe[field] = "must be a date YYYY-MM-DD"
		return pgtype.Date{}
	}
	return pgtype.Date{Time: t, Valid: true}
}

// apply validates in and writes it over p (the current terms on PATCH).
func (in *agreementInput) apply(p *licensingdb.CreateAgreementParams, create bool) fieldErrors {
	fe := fieldErrors{}
	req := func(field string, missing bool) {
		if create && missing {
			fe[field] = "is required"
		}
	}
	req("brand_id", in.BrandID == nil)
	req("licensee_id", in.LicenseeID == nil)
	req("title", in.Title == nil)
	req("territory", in.Territory == nil)
	req("start_date", in.StartDate == nil)
	req("end_date", in.EndDate == nil)
	req("royalty_rate_bps", in.RoyaltyRateBps == nil)
	req("minimum_guarantee_currency", in.MinimumGuaranteeCurrency == nil)
	if create && in.Version != nil {
		fe["version"] = "is set by the server on create"
	}
	if !create {
		if in.Version == nil {
			fe["version"] = "is required (the version you read, for optimistic locking)"
		}
		if in.BrandID != nil || in.LicenseeID != nil {
			fe["brand_id"] = "brand and licensee of an agreement cannot change; create a new agreement"
		}
	}
	if in.BrandID != nil {
		if u, ok := parseUUID(*in.BrandID); ok {
			p.BrandID = u
		} else {
			fe["brand_id"] = "must be a UUID"
		}
	}
	if in.LicenseeID != nil {
		if u, ok := parseUUID(*in.LicenseeID); ok {
			p.LicenseeID = u
		} else {
			fe["licensee_id"] = "must be a UUID"
		}
	}
	if in.Title != nil {
		checkName(fe, "title", *in.Title)
		p.Title = *in.Title
	}
	if in.Territory != nil {
		if len(in.Territory) < 1 || len(in.Territory) > 300 {
			fe["territory"] = "must list 1 to 300 country codes"
		}
		for _, c := range in.Territory {
			if !countryRe.MatchString(c) {
				fe["territory"] = fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 code in upper case", c)
			}
		}
		p.Territory = in.Territory
	}
	if d := parseDate(fe, "start_date", in.StartDate); d.Valid {
		p.StartDate = d
	}
	if d := parseDate(fe, "end_date", in.EndDate); d.Valid {
		p.EndDate = d
	}
	if p.StartDate.Valid && p.EndDate.Valid && !p.EndDate.Time.After(p.StartDate.Time) {
		fe["end_date"] = "must be after start_date"
	}
	if in.RoyaltyRateBps != nil {
		if *in.RoyaltyRateBps < 0 || *in.RoyaltyRateBps > 10000 {
			fe["royalty_rate_bps"] = "must be 0 to 10000 basis points"
		}
		p.RoyaltyRateBps = *in.RoyaltyRateBps
	}
	if in.MinimumGuaranteeMinor != nil {
		if *in.MinimumGuaranteeMinor < 0 {
			fe["minimum_guarantee_minor"] = "must be >= 0"
		}
		p.MinimumGuaranteeMinor = *in.MinimumGuaranteeMinor
	}
	if in.MinimumGuaranteeCurrency != nil {
		if !currencyRe.MatchString(*in.MinimumGuaranteeCurrency) {
			fe["minimum_guarantee_currency"] = "must be an ISO 4217 code in upper case, e.g. USD"
		}
		p.MinimumGuaranteeCurrency = *in.MinimumGuaranteeCurrency
	}
	return fe
}

func (s *Server) createAgreement(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in agreementInput
	if !decode(w, r, &in) {
		return
	}
	var p licensingdb.CreateAgreementParams
	if in.apply(&p, true).bad(w) {
		return
	}
	var a licensingdb.Agreement
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) (err error) {
		a, err = licensingdb.New(tx).CreateAgreement(r.Context(), p)
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "agreement.create", uuidString(a.ID), nil)
	writeJSON(w, http.StatusCreated, a)
}

var agreementStatuses = []string{"draft", "pending_approval", "approved", "rejected", "active", "expired", "terminated"}

func (s *Server) listAgreements(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	fe := fieldErrors{}
	limit, offset := page(q, fe)
	f := licensingdb.ListAgreementsParams{Status: optional(q, "status"), Territory: optional(q, "territory"), Limit: limit, Offset: offset}
	if f.Status != nil {
		oneOf(fe, "status", *f.Status, agreementStatuses...)
	}
	if f.Territory != nil && !countryRe.MatchString(*f.Territory) {
		fe["territory"] = "must be an ISO 3166-1 alpha-2 code in upper case"
	}
	for field, dst := range map[string]*pgtype.UUID{"brand_id": &f.BrandID, "licensee_id": &f.LicenseeID} {
		if v := optional(q, field); v != nil {
			u, ok := parseUUID(*v)
			if !ok {
				fe[field] = "must be a UUID"
			}
			*dst = u
		}
	}
	if fe.bad(w) {
		return
	}
	respondRead(s, w, r, rc, func(qs *licensingdb.Queries) (out list[licensingdb.Agreement], err error) {
		out = list[licensingdb.Agreement]{Limit: limit, Offset: offset}
		if out.Items, err = qs.ListAgreements(r.Context(), f); err != nil {
			return out, err
		}
		out.Total, err = qs.CountAgreements(r.Context(), licensingdb.CountAgreementsParams{Status: f.Status, BrandID: f.BrandID, LicenseeID: f.LicenseeID, Territory: f.Territory})
		return out, err
	})
}

func (s *Server) getAgreement(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	readByID(s, w, r, rc, (*licensingdb.Queries).GetAgreement)
}

// patchAgreement edits the terms of a draft or rejected agreement, if the
// version matches (else 409).
func (s *Server) patchAgreement(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in agreementInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok {
		return
	}
	var probe licensingdb.CreateAgreementParams
	if in.apply(&probe, false).bad(w) {
		return
	}
	var a licensingdb.Agreement
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		cur, err := q.GetAgreement(r.Context(), id)
		if err != nil {
			return err
		}
		if cur.Version != *in.Version {
			return &conflictError{fmt.Sprintf("the agreement is at version %d, not %d; re-read it", cur.Version, *in.Version)}
		}
		if cur.Status != "draft" && cur.Status != "rejected" {
			return &conflictError{fmt.Sprintf("the agreement is %s; only draft or rejected agreements can be edited", cur.Status)}
		}
		p := licensingdb.CreateAgreementParams{BrandID: cur.BrandID, LicenseeID: cur.LicenseeID, Title: cur.Title, Territory: cur.Territory,
			StartDate: cur.StartDate, EndDate: cur.EndDate, RoyaltyRateBps: cur.RoyaltyRateBps,
			MinimumGuaranteeMinor: cur.MinimumGuaranteeMinor, MinimumGuaranteeCurrency: cur.MinimumGuaranteeCurrency}
		if fe := in.apply(&p, false); len(fe) > 0 {
			return &conflictError{"the merged terms are invalid: " + fmt.Sprint(map[string]string(fe))}
		}
		a, err = q.UpdateAgreement(r.Context(), licensingdb.UpdateAgreementParams{ID: id, Version: *in.Version, Title: p.Title, Territory: p.Territory,
			StartDate: p.StartDate, EndDate: p.EndDate, RoyaltyRateBps: p.RoyaltyRateBps,
			MinimumGuaranteeMinor: p.MinimumGuaranteeMinor, MinimumGuaranteeCurrency: p.MinimumGuaranteeCurrency})
		if errors.Is(err, pgx.ErrNoRows) {
			return &conflictError{"the agreement changed since it was read; re-read it"}
		}
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "agreement.update", uuidString(id), map[string]any{"version": a.Version})
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) deleteAgreement(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.deleteObject(w, r, rc, "agreement", func(q *licensingdb.Queries, id pgtype.UUID) (int64, error) {
		return q.DeleteAgreement(r.Context(), id)
	})
}

// ---- approval workflow ----

type submitInput struct {
	Version *int32 `json:"version"`
	// Approvers assigns each step to a subject; an empty string leaves the
	// step open to any manager or admin. Default: one open step.
	Approvers []string `json:"approvers"`
}

// submitAgreement moves a draft or rejected agreement to pending_approval
// and opens its approval steps, in one transaction.
func (s *Server) submitAgreement(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in submitInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok {
		return
	}
	fe := fieldErrors{}
	if in.Version == nil {
		fe["version"] = "is required"
	}
	if len(in.Approvers) > 10 {
		fe["approvers"] = "at most 10 steps"
	}
	for _, a := range in.Approvers {
		if len(a) > 255 {
			fe["approvers"] = "each approver is at most 255 characters"
		}
	}
	if fe.bad(w) {
		return
	}
	if len(in.Approvers) == 0 {
		in.Approvers = []string{""}
	}
	var out struct {
		Agreement licensingdb.Agreement  `json:"agreement"`
		Approvals []licensingdb.Approval `json:"approvals"`
	}
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		cur, err := q.GetAgreementForUpdate(r.Context(), id)
		if err != nil {
			return err
		}
		if cur.Status != "draft" && cur.Status != "rejected" {
			return &conflictError{fmt.Sprintf("the agreement is %s; only draft or rejected agreements can be submitted", cur.Status)}
		}
		out.Agreement, err = q.UpdateAgreementStatus(r.Context(), licensingdb.UpdateAgreementStatusParams{ID: id, Status: "pending_approval", ExpectedVersion: in.Version})
		if errors.Is(err, pgx.ErrNoRows) {
			return &conflictError{"the agreement changed since it was read; re-read it"}
		}
		if err != nil {
			return err
		}
		prev, err := q.ListApprovalsByAgreement(r.Context(), id)
		if err != nil {
			return err
		}
		step := int32(len(prev))
		for _, who := range in.Approvers {
			step++
			var approver *string
			if who != "" {
				approver = &who
			}
			ap, err := q.CreateApproval(r.Context(), licensingdb.CreateApprovalParams{AgreementID: id, Step: step, Approver: approver})
			if err != nil {
				return err
			}
			out.Approvals = append(out.Approvals, ap)
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "agreement.submit", uuidString(id), map[string]any{"steps": len(out.Approvals)})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listAgreementApprovals(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id, ok := parseUUID(r.PathValue("id"))
	if !ok {
		s.fail(w, r, rc, errNotFound)
		return
	}
	respondRead(s, w, r, rc, func(q *licensingdb.Queries) (map[string]any, error) {
		if _, err := q.GetAgreement(r.Context(), id); err != nil {
			return nil, err
		}
		out, err := q.ListApprovalsByAgreement(r.Context(), id)
		return map[string]any{"items": out}, err
	})
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	readByID(s, w, r, rc, (*licensingdb.Queries).GetApproval)
}

type decisionInput struct {
	Decision string  `json:"decision"`
	Comment  *string `json:"comment"`
}

// decideApproval records the caller's decision on a pending step. A
// rejection rejects the agreement; the last approval approves it.
func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in decisionInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok {
		return
	}
	fe := fieldErrors{}
	oneOf(fe, "decision", in.Decision, "approved", "rejected")
	if in.Comment != nil && len(*in.Comment) > 4000 {
		fe["comment"] = "at most 4000 characters"
	}
	if fe.bad(w) {
		return
	}
	var out struct {
		Approval  licensingdb.Approval  `json:"approval"`
		Agreement licensingdb.Agreement `json:"agreement"`
	}
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		ap, err := q.GetApproval(r.Context(), id)
		if err != nil {
			return err
		}
		// Lock the agreement so concurrent decisions on its steps serialize:
		// the pending count below then sees every other decision.
		ag, err := q.GetAgreementForUpdate(r.Context(), ap.AgreementID)
		if err != nil {
			return err
		}
		if ag.Status != "pending_approval" {
			return &conflictError{fmt.Sprintf("the agreement is %s, not pending approval", ag.Status)}
		}
		out.Approval, err = q.DecideApproval(r.Context(), licensingdb.DecideApprovalParams{ID: id, Decision: in.Decision, Approver: rc.Principal.Subject, Comment: in.Comment})
		if errors.Is(err, pgx.ErrNoRows) {
			return &conflictError{"the step is already decided or assigned to another approver"}
		}
		if err != nil {
			return err
		}
		next := ""
		if in.Decision == "rejected" {
			next = "rejected"
		} else {
			n, err := q.CountPendingApprovalsForAgreement(r.Context(), ap.AgreementID)
			if err != nil {
				return err
			}
			if n == 0 {
				next = "approved"
			}
		}
		out.Agreement = ag
		if next != "" {
			out.Agreement, err = q.UpdateAgreementStatus(r.Context(), licensingdb.UpdateAgreementStatusParams{ID: ag.ID, Status: next})
		}
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "approval.decide", uuidString(id), map[string]any{"decision": in.Decision, "agreement": uuidString(out.Agreement.ID), "agreement_status": out.Agreement.Status})
	writeJSON(w, http.StatusOK, out)
}

// agreementTransitions are the status changes POST /agreements/{id}/status
// allows; the approval workflow owns draft -> pending_approval -> approved
// or rejected.
var agreementTransitions = map[string][]string{
	"approved": {"active", "terminated"},
	"active":   {"expired", "terminated"},
}

type statusInput struct {
	Status  string `json:"status"`
	Version *int32 `json:"version"`
}

// setAgreementStatus moves an approved agreement into force, or ends one.
func (s *Server) setAgreementStatus(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in statusInput
	id, ok := s.pathIDAndBody(w, r, rc, &in)
	if !ok {
		return
	}
	fe := fieldErrors{}
	oneOf(fe, "status", in.Status, "active", "expired", "terminated")
	if in.Version == nil {
		fe["version"] = "is required"
	}
	if fe.bad(w) {
		return
	}
	var a licensingdb.Agreement
	err := s.store.Write(r.Context(), rc.Tenant, func(tx pgx.Tx) error {
		q := licensingdb.New(tx)
		cur, err := q.GetAgreementForUpdate(r.Context(), id)
		if err != nil {
			return err
		}
		allowed := agreementTransitions[cur.Status]
		if !slices.Contains(allowed, in.Status) {
			return &conflictError{fmt.Sprintf("an agreement that is %s cannot become %s", cur.Status, in.Status)}
		}
		a, err = q.UpdateAgreementStatus(r.Context(), licensingdb.UpdateAgreementStatusParams{ID: id, Status: in.Status, ExpectedVersion: in.Version})
		if errors.Is(err, pgx.ErrNoRows) {
			return &conflictError{"the agreement changed since it was read; re-read it"}
		}
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	s.recordMutation(r, rc, "agreement.status", uuidString(id), map[string]any{"status": a.Status})
	writeJSON(w, http.StatusOK, a)
}

// expiringAgreements lists approved or active agreements ending before a
// date (default: 90 days from today), soonest first.
func (s *Server) expiringAgreements(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	fe := fieldErrors{}
	limit, _ := page(q, fe)
	before := pgtype.Date{Time: time.Now().UTC().AddDate(0, 0, 90).Truncate(24 * time.Hour), Valid: true}
	if v := optional(q, "before"); v != nil {
		if d := parseDate(fe, "before", v); d.Valid {
			before = d
		}
	}
	if fe.bad(w) {
		return
	}
	respondOne(s, w, r, rc, func(q *licensingdb.Queries) (map[string]any, error) {
		out, err := q.ListExpiringAgreements(r.Context(), licensingdb.ListExpiringAgreementsParams{Before: before, Limit: limit})
		return map[string]any{"items": out}, err
	})
}

// pathIDAndBody reads the {id} of the path and decodes the JSON body into
// in. It answers the request itself (404 for a malformed id, 400 for a bad
// body) and returns false when the handler must stop.
func (s *Server) pathIDAndBody(w http.ResponseWriter, r *http.Request, rc *reqCtx, in any) (pgtype.UUID, bool) {
	id, ok := parseUUID(r.PathValue("id"))
	if !ok {
		s.fail(w, r, rc, errNotFound)
		return id, false
	}
	return id, decode(w, r, in)
}

// readByID answers GET .../{id} through the tenant's scoped handle. A
// malformed id, an unknown id and another tenant's id all give the same 404.
func readByID[T any](s *Server, w http.ResponseWriter, r *http.Request, rc *reqCtx, get func(*licensingdb.Queries, context.Context, pgtype.UUID) (T, error)) {
	id, ok := parseUUID(r.PathValue("id"))
	if !ok {
		s.fail(w, r, rc, errNotFound)
		return
	}
	respondOne(s, w, r, rc, func(q *licensingdb.Queries) (T, error) { return get(q, r.Context(), id) })
}

// respondOne is respondRead for a read of exactly one statement, served by
// the router's single-statement fast path (Store.ReadOne).
func respondOne[T any](s *Server, w http.ResponseWriter, r *http.Request, rc *reqCtx, read func(*licensingdb.Queries) (T, error)) {
	respond(s, w, r, rc, s.store.ReadOne, read)
}

// respondRead runs read on the tenant's scoped handle and answers with its
// result as JSON, or with the error as fail maps it (404, 409, 500...).
func respondRead[T any](s *Server, w http.ResponseWriter, r *http.Request, rc *reqCtx, read func(*licensingdb.Queries) (T, error)) {
	respond(s, w, r, rc, s.store.Read, read)
}

func respond[T any](s *Server, w http.ResponseWriter, r *http.Request, rc *reqCtx,
	via func(context.Context, tenancy.ID, func(licensingdb.DBTX) error) error, read func(*licensingdb.Queries) (T, error)) {
	var v T
	err := via(r.Context(), rc.Tenant, func(db licensingdb.DBTX) (err error) {
		v, err = read(licensingdb.New(db))
		return err
	})
	if err != nil {
		s.fail(w, r, rc, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
