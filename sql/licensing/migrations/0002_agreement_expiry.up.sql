-- Supports the "expiring agreements" query (ListExpiringAgreements): only
-- agreements that are in force or about to be can expire, so the index is
-- partial and stays small.
CREATE INDEX agreements_end_date_live_idx
    ON agreements (end_date)
    WHERE status IN ('approved', 'active');
