-- bulkhead control plane, version 2: the migration ledger.
--
-- One migration_runs row per fan-out run (migrate.Migrator.Up / Down), one
-- migration_results row per tenant the run touched. A resumed run keeps its
-- id: its row goes back to 'running' and its attempts count grows; a tenant
-- retried within it gets its result row overwritten with attempts + 1.
-- tenant_id is not a foreign key: the ledger outlives purged tenants.

CREATE TABLE migration_runs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    direction   text        NOT NULL CHECK (direction IN ('up', 'down')),
    -- RunOpts.Target as given: up, 0 = latest; down, 0 = one step, -1 = all
    -- the way down; otherwise the version to migrate to.
    target      bigint      NOT NULL,
    state       text        NOT NULL
                CHECK (state IN ('running', 'succeeded', 'failed', 'stopped', 'interrupted')),
    actor       text        NOT NULL,
    -- The tenant selection (migrate.Selection without its Go predicate).
    selection   jsonb       NOT NULL DEFAULT '{}',
    -- How many times the run was started: 1, plus one per resume.
    attempts    integer     NOT NULL DEFAULT 1,
    tenants     integer     NOT NULL DEFAULT 0,
    succeeded   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    skipped     integer     NOT NULL DEFAULT 0,
    not_started integer     NOT NULL DEFAULT 0,
    -- Why the run stopped early (canary failed, error budget spent, canceled).
    note        text        NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE migration_results (
    run_id       bigint      NOT NULL REFERENCES migration_runs (id) ON DELETE CASCADE,
    tenant_id    text        NOT NULL,
    -- 'running' while a multi-step tenant is part-way (or was when the run died).
    state        text        NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    from_version bigint      NOT NULL,
    to_version   bigint      NOT NULL,
    -- Versions applied (up) or reverted (down) in this attempt, in order.
    versions     bigint[]    NOT NULL DEFAULT '{}',
    attempts     integer     NOT NULL DEFAULT 1,
    error        text,
    sqlstate     text,
    duration_us  bigint      NOT NULL DEFAULT 0,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, tenant_id)
);

CREATE INDEX migration_results_tenant ON migration_results (tenant_id, run_id DESC);
