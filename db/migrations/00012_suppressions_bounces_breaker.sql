-- +goose Up
-- Suppressions are the addresses a tenant's mail must not go to: hard bounces and complaints
-- (added automatically), manual entries and unsubscribes. One row per tenant and address;
-- the address is stored lower-case with an A-label domain, byte-ordered so a prefix search
-- can use the primary key.
CREATE TABLE suppressions (
    tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address            text COLLATE "C" NOT NULL,
    id                 text NOT NULL,
    reason             text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual', 'unsubscribe')),
    -- The message whose bounce or complaint suppressed the address; no foreign key, so
    -- the entry outlives the message.
    source_message_id  text,
    -- What the receiving side said (the SMTP reply or the DSN's diagnostic), or a note.
    detail             text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    PRIMARY KEY (tenant_id, address)
);

-- Lists page newest first by id.
CREATE UNIQUE INDEX suppressions_tenant_id_idx ON suppressions (tenant_id, id);

-- Bounce reports are what arrived at the bounce listener: DSNs and complaints tied to a
-- message, and anything that could not be parsed or tied to one (kept whole for the operator).
CREATE TABLE bounce_reports (
    id             text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('dsn', 'arf', 'unknown')),
    outcome        text NOT NULL CHECK (outcome IN ('recorded', 'unparsed', 'unmatched')),
    tenant_id      text REFERENCES tenants (id) ON DELETE CASCADE,
    message_id     text,
    envelope_from  text NOT NULL DEFAULT '',
    rcpt_to        text NOT NULL DEFAULT '',
    remote_addr    text NOT NULL DEFAULT '',
    problem        text NOT NULL DEFAULT '',
    details        jsonb NOT NULL DEFAULT '{}',
    -- The report as received; kept only for reports that were not recorded.
    raw            bytea,
    size_bytes     integer NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bounce_reports_outcome_idx ON bounce_reports (outcome, id DESC);

-- The connector circuit breaker: consecutive failures of one kind (a rejected password, a
-- certificate that does not verify) across messages, and why a connector is paused.
ALTER TABLE connectors
    ADD COLUMN paused_reason        text CHECK (paused_reason IN ('manual', 'auth.failed', 'tls.certificate_invalid',
        'auth.requires_tls', 'auth.required', 'auth.mechanism_unsupported', 'smtp.starttls_unsupported')),
    ADD COLUMN paused_at            timestamptz,
    ADD COLUMN failure_code         text,
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN last_failure         jsonb;

-- +goose Down
ALTER TABLE connectors
    DROP COLUMN last_failure,
    DROP COLUMN consecutive_failures,
    DROP COLUMN failure_code,
    DROP COLUMN paused_at,
    DROP COLUMN paused_reason;
DROP TABLE bounce_reports;
DROP TABLE suppressions;
