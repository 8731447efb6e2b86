package server

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// infraRoutes are the unauthenticated endpoints outside the API table.
var infraRoutes = []struct{ Method, Pattern, Summary string }{
	{"GET", "/healthz", "Liveness: the process serves HTTP"},
	{"GET", "/readyz", "Readiness: admin and gateway pools reach the database within 1 s"},
	{"GET", "/metrics", "Prometheus metrics"},
	{"GET", "/openapi.json", "This description"},
}

func obj(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

var (
	str     = map[string]any{"type": "string"}
	integer = map[string]any{"type": "integer"}
	uuidT   = map[string]any{"type": "string", "format": "uuid"}
	dateT   = map[string]any{"type": "string", "format": "date"}
	timeT   = map[string]any{"type": "string", "format": "date-time"}
	strs    = map[string]any{"type": "array", "items": str}
)

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func listOf(name string) map[string]any {
	return obj(map[string]any{"items": map[string]any{"type": "array", "items": ref(name)}, "total": integer, "limit": integer, "offset": integer})
}

// schemas are the request and response bodies, by the names the route
// table uses.
var schemas = map[string]any{
	"Error":        obj(map[string]any{"error": str, "message": str, "fields": map[string]any{"type": "object", "additionalProperties": str}}, "error", "message"),
	"Limits":       obj(map[string]any{"max_conns": integer, "statement_timeout_ms": integer}),
	"TenantCreate": obj(map[string]any{"id": str, "name": str, "limits": ref("Limits"), "settings": map[string]any{"type": "object"}}, "id"),
	"TenantPatch":  obj(map[string]any{"name": str, "limits": ref("Limits"), "settings": map[string]any{"type": "object"}}),
	"Tenant": obj(map[string]any{"id": str, "key": str, "name": str, "status": map[string]any{"type": "string", "enum": []string{"provisioning", "active", "suspended", "archived", "deleted"}},
		"schema": str, "role": str, "cluster": str, "limits": map[string]any{"type": "object"}, "schema_version": integer, "settings": map[string]any{"type": "object"},
		"created_at": timeT, "updated_at": timeT, "deleted_at": timeT, "retain_until": timeT}),
	"TenantList":   obj(map[string]any{"items": map[string]any{"type": "array", "items": ref("Tenant")}, "next": str}),
	"SchemaStatus": obj(map[string]any{"tenant": str, "status": str, "schema": str, "schema_version": integer, "latest_version": integer, "size_bytes": integer, "objects": integer, "exists": map[string]any{"type": "boolean"}, "retain_until": timeT}),
	"BrandInput":   obj(map[string]any{"name": str, "description": str, "status": map[string]any{"type": "string", "enum": []string{"active", "retired"}}}),
	"Brand":        obj(map[string]any{"id": uuidT, "name": str, "description": str, "status": str, "created_at": timeT, "updated_at": timeT}),
	"BrandList":    listOf("Brand"),
	"LicenseeInput": obj(map[string]any{"name": str, "contact_email": str, "country": str,
		"status": map[string]any{"type": "string", "enum": []string{"active", "suspended", "inactive"}}}),
	"Licensee":     obj(map[string]any{"id": uuidT, "name": str, "contact_email": str, "country": str, "status": str, "created_at": timeT, "updated_at": timeT}),
	"LicenseeList": listOf("Licensee"),
	"AgreementInput": obj(map[string]any{"brand_id": uuidT, "licensee_id": uuidT, "title": str, "territory": strs, "start_date": dateT, "end_date": dateT,
		"royalty_rate_bps": integer, "minimum_guarantee_minor": integer, "minimum_guarantee_currency": str, "version": integer}),
	"Agreement": obj(map[string]any{"id": uuidT, "brand_id": uuidT, "licensee_id": uuidT, "title": str, "territory": strs, "start_date": dateT, "end_date": dateT,
		"royalty_rate_bps": integer, "minimum_guarantee_minor": integer, "minimum_guarantee_currency": str,
		"status": map[string]any{"type": "string", "enum": agreementStatuses}, "version": integer, "created_at": timeT, "updated_at": timeT}),
	"AgreementList":  listOf("Agreement"),
	"StatusInput":    obj(map[string]any{"status": map[string]any{"type": "string", "enum": []string{"active", "expired", "terminated"}}, "version": integer}, "status", "version"),
	"AgreementItems": obj(map[string]any{"items": map[string]any{"type": "array", "items": ref("Agreement")}}),
	"SubmitInput":    obj(map[string]any{"version": integer, "approvers": strs}, "version"),
	"Approval": obj(map[string]any{"id": uuidT, "agreement_id": uuidT, "step": integer, "decision": str, "approver": str, "comment": str,
		"decided_at": timeT, "created_at": timeT}),
	"ApprovalList":  obj(map[string]any{"items": map[string]any{"type": "array", "items": ref("Approval")}}),
	"Submission":    obj(map[string]any{"agreement": ref("Agreement"), "approvals": map[string]any{"type": "array", "items": ref("Approval")}}),
	"DecisionInput": obj(map[string]any{"decision": map[string]any{"type": "string", "enum": []string{"approved", "rejected"}}, "comment": str}, "decision"),
	"Decision":      obj(map[string]any{"approval": ref("Approval"), "agreement": ref("Agreement")}),
	"AuditEvent":    obj(map[string]any{"id": integer, "at": timeT, "actor": str, "tenant": str, "action": str, "target": str, "detail": map[string]any{"type": "object"}}),
	"AuditList":     obj(map[string]any{"items": map[string]any{"type": "array", "items": ref("AuditEvent")}}),
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func errResp(desc string) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
}

// openAPISpec builds the OpenAPI 3.1 description from the route table.
func (s *Server) openAPISpec() map[string]any {
	paths := map[string]map[string]any{}
	add := func(method, pattern string, op map[string]any) {
		if paths[pattern] == nil {
			paths[pattern] = map[string]any{}
		}
		paths[pattern][strings.ToLower(method)] = op
	}
	for _, r := range infraRoutes {
		add(r.Method, r.Pattern, map[string]any{"summary": r.Summary, "security": []any{}, "responses": map[string]any{"200": map[string]any{"description": "OK"}}})
	}
	for _, rt := range s.routes {
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": str})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": str})
		}
		if rt.Tenant {
			params = append(params, map[string]any{"name": "X-Tenant", "in": "header", "schema": str,
				"description": "Operators: the tenant to act on (audited). Tenant tokens: optional, must equal the token's tenant."})
		}
		ok := map[string]any{"description": "success"}
		if rt.Resp != "" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.Resp)}}
		}
		resp := map[string]any{
			itoa(rt.Success): ok,
			"401":            errResp("missing, invalid or expired token"),
			"403":            errResp("missing or invalid tenant context, or permission denied"),
			"429":            errResp("subject locked out after repeated failures"),
		}
		if rt.Body != "" || len(rt.Query) > 0 {
			resp["400"] = errResp("invalid request, with field errors")
		}
		if strings.Contains(rt.Pattern, "{id}") {
			resp["404"] = errResp("not found (also for another tenant's object)")
		}
		if rt.Method != "GET" {
			resp["409"] = errResp("conflict: duplicate, stale version, invalid transition")
		}
		op := map[string]any{"summary": rt.Summary, "operationId": rt.Method + " " + rt.Pattern,
			"x-permission": string(rt.Perm), "responses": resp}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Body != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.Body)}}}
		}
		add(rt.Method, rt.Pattern, op)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "bulkhead brand-licensing reference server", "version": "1.0.0",
			"description": "Tenant users call the licensing API with a tenant token; platform operators call the management API with a platform token and act on a tenant with X-Tenant."},
		"paths":      paths,
		"security":   []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.openAPISpec())
}
