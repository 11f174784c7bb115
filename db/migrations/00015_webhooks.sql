-- +goose Up
-- webhooks are a tenant's endpoints for events. The signing secret is sealed (AES-256-GCM)
-- because signing needs it back; after a rotation the previous one signs too until it expires.
CREATE TABLE webhooks (
    id                          text PRIMARY KEY,
    tenant_id                   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                         text NOT NULL,
    description                 text NOT NULL DEFAULT '',
    -- Empty: every event type.
    event_types                 text[] NOT NULL DEFAULT '{}',
    enabled                     boolean NOT NULL DEFAULT true,
    secret                      bytea NOT NULL,
    secret_key_id               text NOT NULL,
    previous_secret             bytea,
    previous_secret_key_id      text,
    previous_secret_expires_at  timestamptz,
    -- failing_since is the first failed attempt since the last success.
    failing_since               timestamptz,
    disabled_reason             text NOT NULL DEFAULT '',
    disabled_at                 timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id, id);

-- A delivery is one event for one webhook; its attempts are logged below.
CREATE TABLE webhook_deliveries (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL,
    webhook_id        text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id          text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type        text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    next_attempt_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (tenant_id, webhook_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id       text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    attempted_at      timestamptz NOT NULL,
    -- 0 when no HTTP answer came (refused, timeout, reset, policy).
    status_code       integer NOT NULL,
    latency_ms        integer NOT NULL,
    response_headers  jsonb NOT NULL DEFAULT '{}',
    -- The first KiB of the answer's body.
    response_body     text NOT NULL DEFAULT '',
    error             text NOT NULL DEFAULT ''
);

CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- The dispatcher's position in the event stream: one row, locked by whichever process
-- dispatches, so several processes never dispatch an event twice.
CREATE TABLE webhook_dispatch (
    id              integer PRIMARY KEY CHECK (id = 1),
    after_xid       text NOT NULL DEFAULT '',
    after_sequence  bigint NOT NULL DEFAULT 0
);
INSERT INTO webhook_dispatch (id) VALUES (1);

-- The platform facts last published, to notice changes at start-up.
CREATE TABLE platform_facts (
    id          integer PRIMARY KEY CHECK (id = 1),
    facts       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE platform_facts;
DROP TABLE webhook_dispatch;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
