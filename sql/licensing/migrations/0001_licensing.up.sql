-- Brand-licensing tenant schema, version 1.
--
-- Applied by bulkhead's migration engine once per tenant, inside one
-- transaction, as the (non-tenant) migration owner role with search_path set to
-- the tenant's schema. Therefore:
--   * every name is unqualified: objects land in the tenant schema;
--   * no extensions, functions or triggers: the tenant runtime role only gets
--     SELECT/INSERT/UPDATE/DELETE on tables, so everything here must work
--     through plain DML (updated_at and version are maintained by the queries
--     in sql/licensing/queries, not by triggers);
--   * ids are uuid from gen_random_uuid() (built in since PostgreSQL 13), so
--     ids are not enumerable and need no sequence grants;
--   * enumerated values are text + CHECK rather than CREATE TYPE ... AS ENUM:
--     a CHECK can be widened or narrowed in a later migration inside a
--     transaction, an enum value can never be removed.
--
-- Type choices for money and rates (exact, and JSON-friendly in Go):
--   * royalty rates are integer basis points (1 bp = 0.01 %, 0..10000): an
--     int32 in Go, exact, no numeric/decimal type or float rounding;
--   * money is bigint minor units (cents, pence, yen) plus an ISO 4217
--     alphabetic currency code: an int64 in Go, exact to the last unit.

CREATE TABLE brands (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL,
    description text,
    status      text        NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT brands_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 200),
    CONSTRAINT brands_description_check
        CHECK (description IS NULL OR length(description) <= 4000),
    CONSTRAINT brands_status_check
        CHECK (status IN ('active', 'retired'))
);

-- Brand names are unique per tenant regardless of case ("Acme" = "ACME").
CREATE UNIQUE INDEX brands_name_lower_key ON brands (lower(name));
CREATE INDEX brands_status_idx ON brands (status);

CREATE TABLE licensees (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL,
    contact_email text        NOT NULL,
    -- ISO 3166-1 alpha-2, upper case (e.g. 'GB', 'US').
    country       text        NOT NULL,
    status        text        NOT NULL DEFAULT 'active',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT licensees_name_check
        CHECK (name = btrim(name) AND length(name) BETWEEN 1 AND 200),
    -- Deliberately loose (local@domain.tld, no whitespace, at most 254 octets):
    -- real validation is a confirmation e-mail, not a regular expression.
    CONSTRAINT licensees_contact_email_check
        CHECK (length(contact_email) <= 254
               AND contact_email ~ '^[^@[:space:]]+@[^@[:space:].]+(\.[^@[:space:].]+)+$'),
    CONSTRAINT licensees_country_check
        CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT licensees_status_check
        CHECK (status IN ('active', 'suspended', 'inactive'))
);

CREATE UNIQUE INDEX licensees_name_lower_key ON licensees (lower(name));
CREATE INDEX licensees_status_idx ON licensees (status);
CREATE INDEX licensees_country_idx ON licensees (country);

CREATE TABLE agreements (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- RESTRICT: a brand or licensee with agreements cannot be deleted; retire
    -- or deactivate it instead, so the contractual history stays intact.
    brand_id                uuid        NOT NULL REFERENCES brands (id) ON DELETE RESTRICT,
    licensee_id             uuid        NOT NULL REFERENCES licensees (id) ON DELETE RESTRICT,
    title                   text        NOT NULL,
    -- ISO 3166-1 alpha-2 codes, upper case, at least one, no NULL elements.
    territory               text[]      NOT NULL,
    start_date              date        NOT NULL,
    end_date                date        NOT NULL,
    -- Basis points: 1250 = 12.50 %.
    royalty_rate_bps        integer     NOT NULL,
    -- Minimum guarantee in minor units of minimum_guarantee_currency.
    minimum_guarantee_minor bigint      NOT NULL DEFAULT 0,
    -- ISO 4217 alphabetic code, upper case (e.g. 'USD', 'EUR', 'JPY').
    minimum_guarantee_currency text     NOT NULL,
    status                  text        NOT NULL DEFAULT 'draft',
    -- Optimistic locking: every update bumps it; writers send the version they read.
    version                 integer     NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agreements_title_check
        CHECK (title = btrim(title) AND length(title) BETWEEN 1 AND 200),
    CONSTRAINT agreements_territory_check
        CHECK (array_ndims(territory) = 1
               AND cardinality(territory) BETWEEN 1 AND 300
               AND array_position(territory, NULL) IS NULL
               AND array_to_string(territory, ',') ~ '^[A-Z]{2}(,[A-Z]{2})*$'),
    CONSTRAINT agreements_dates_check
        CHECK (end_date > start_date),
    CONSTRAINT agreements_royalty_rate_bps_check
        CHECK (royalty_rate_bps BETWEEN 0 AND 10000),
    CONSTRAINT agreements_minimum_guarantee_minor_check
        CHECK (minimum_guarantee_minor >= 0),
    CONSTRAINT agreements_minimum_guarantee_currency_check
        CHECK (minimum_guarantee_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT agreements_status_check
        CHECK (status IN ('draft', 'pending_approval', 'approved', 'rejected',
                          'active', 'expired', 'terminated')),
    CONSTRAINT agreements_version_check
        CHECK (version >= 1),
    -- Its index also serves lookups and FK checks by brand_id (leading column),
    -- so brand_id needs no index of its own.
    CONSTRAINT agreements_brand_licensee_title_key
        UNIQUE (brand_id, licensee_id, title)
);

CREATE INDEX agreements_licensee_id_idx ON agreements (licensee_id);
CREATE INDEX agreements_status_idx ON agreements (status);
-- Serves the default listing order (newest first) without a sort.
CREATE INDEX agreements_created_at_idx ON agreements (created_at DESC, id);

CREATE TABLE approvals (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    agreement_id uuid        NOT NULL REFERENCES agreements (id) ON DELETE CASCADE,
    -- 1-based position in the agreement's approval chain.
    step         integer     NOT NULL,
    decision     text        NOT NULL DEFAULT 'pending',
    -- Subject (e.g. the JWT "sub") assigned to, or who took, the decision.
    -- NULL while a pending step is open to any approver.
    approver     text,
    comment      text,
    decided_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approvals_step_check
        CHECK (step >= 1),
    CONSTRAINT approvals_decision_check
        CHECK (decision IN ('pending', 'approved', 'rejected')),
    CONSTRAINT approvals_approver_check
        CHECK (approver IS NULL OR length(approver) BETWEEN 1 AND 255),
    CONSTRAINT approvals_comment_check
        CHECK (comment IS NULL OR length(comment) <= 4000),
    -- A decided step has a time and a named approver; a pending one has no time.
    CONSTRAINT approvals_decided_check
        CHECK ((decision = 'pending' AND decided_at IS NULL)
               OR (decision <> 'pending' AND decided_at IS NOT NULL AND approver IS NOT NULL)),
    -- Its index also serves lookups and the FK by agreement_id.
    CONSTRAINT approvals_agreement_step_key
        UNIQUE (agreement_id, step)
);
