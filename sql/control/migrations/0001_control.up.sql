-- bulkhead control plane, version 1.
--
-- Runs with search_path set to the control schema (default "bulkhead") and
-- pg_temp, as the provisioning (admin) role, which owns everything here. The
-- gateway gets EXECUTE on route_tenant only (granted by provision.Init, which
-- knows its name); tenant roles get nothing.

CREATE TABLE tenants (
    id             text        PRIMARY KEY
                   CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    key            text        NOT NULL UNIQUE CHECK (key ~ '^[a-z2-7]{26}$'),
    name           text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    status         text        NOT NULL
                   CHECK (status IN ('provisioning', 'active', 'suspended', 'archived', 'deleted')),
    schema_name    text        NOT NULL UNIQUE,
    role_name      text        NOT NULL UNIQUE,
    cluster        text        NOT NULL DEFAULT 'default',
    -- Limits the router enforces (tenancy.Limits as JSON).
    limits         jsonb       NOT NULL DEFAULT '{}',
    -- Free-form application settings; bulkhead never reads them.
    settings       jsonb       NOT NULL DEFAULT '{}',
    schema_version bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    retain_until   timestamptz,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL AND retain_until IS NOT NULL))
);

CREATE INDEX tenants_status_id ON tenants (status, id);

-- Append-only record of lifecycle and security events.
CREATE TABLE audit_log (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    tenant_id text,
    action    text        NOT NULL,
    target    text        NOT NULL DEFAULT '',
    detail    jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- route_tenant is how the gateway, which can read no table, learns where a
-- tenant lives. SECURITY DEFINER with a pinned search_path (captured from the
-- migration's "<control schema>, pg_temp", so pg_temp comes last and a caller
-- cannot shadow tenants with a temporary table).
CREATE FUNCTION route_tenant(p_id text)
    RETURNS TABLE (key text, status text, schema_name text, role_name text,
                   cluster text, limits jsonb, updated_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path FROM CURRENT
AS $$
    SELECT t.key, t.status, t.schema_name, t.role_name, t.cluster, t.limits, t.updated_at
    FROM tenants t
    WHERE t.id = p_id
$$;

REVOKE ALL ON FUNCTION route_tenant(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_log_append_only() FROM PUBLIC;
