-- +goose Up
CREATE TABLE messages (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- No foreign key: a connector may be deleted while its history stays readable.
    connector_id     text NOT NULL,
    source           text NOT NULL CHECK (source IN ('api', 'smtp', 'test')),
    status           text NOT NULL CHECK (status IN ('queued', 'sending', 'deferred', 'delivered', 'failed', 'cancelled')),
    from_email       text NOT NULL,
    from_name        text NOT NULL DEFAULT '',
    envelope_from    text NOT NULL,
    -- Envelope recipients: to, cc and bcc together.
    recipients       text[] NOT NULL,
    to_addrs         text[] NOT NULL DEFAULT '{}',
    cc_addrs         text[] NOT NULL DEFAULT '{}',
    subject          text NOT NULL DEFAULT '',
    message_id       text NOT NULL,
    tags             text[] NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}',
    -- The rendered message; NULL once purged by retention.
    mime             bytea,
    size_bytes       integer NOT NULL,
    send_at          timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_reply       jsonb,
    status_reason    text NOT NULL DEFAULT '',
    job_id           bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    body_purged_at   timestamptz
);

-- The message log is read newest first, per tenant, with filters.
CREATE INDEX messages_tenant_id_idx ON messages (tenant_id, id DESC);
CREATE INDEX messages_tenant_status_idx ON messages (tenant_id, status, id DESC);
CREATE INDEX messages_tenant_connector_idx ON messages (tenant_id, connector_id, id DESC);
CREATE INDEX messages_tags_idx ON messages USING gin (tags);
CREATE INDEX messages_recipients_idx ON messages USING gin (recipients);
CREATE INDEX messages_purge_idx ON messages (created_at) WHERE mime IS NOT NULL;

CREATE TABLE message_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    data        jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX message_events_message_idx ON message_events (message_id, id);

-- Idempotency keys remember the first response to a submission for 24 hours.
CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Usage counters back limits and quotas across all processes: one row per scope (a
-- connector or a tenant), period and period start. Submissions add to them inside their
-- transaction, so a rolled-back submission counts nothing.
CREATE TABLE usage_counters (
    scope_id      text NOT NULL,
    period        text NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    period_start  timestamptz NOT NULL,
    count         bigint NOT NULL,
    PRIMARY KEY (scope_id, period, period_start)
);

CREATE INDEX usage_counters_start_idx ON usage_counters (period_start);

-- +goose Down
DROP TABLE usage_counters;
DROP TABLE idempotency_keys;
DROP TABLE message_events;
DROP TABLE messages;
