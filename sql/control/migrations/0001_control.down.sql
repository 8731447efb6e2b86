DROP FUNCTION route_tenant(text);
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE tenants;
