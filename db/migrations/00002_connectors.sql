-- +goose Up
CREATE TABLE connectors (
    id                        text PRIMARY KEY,
    tenant_id                 text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                      text NOT NULL,
    kind                      text NOT NULL CHECK (kind IN ('smtp', 'platform')),
    status                    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    is_default                boolean NOT NULL DEFAULT false,
    -- SMTP settings, set only for kind 'smtp'.
    smtp_host                 text,
    smtp_port                 integer,
    smtp_security             text CHECK (smtp_security IN ('tls', 'starttls', 'none')),
    smtp_auth_mechanism       text CHECK (smtp_auth_mechanism IN ('plain', 'login', 'cram-md5', 'none')),
    smtp_username             text,
    -- The password is AES-256-GCM ciphertext; the key id names the key that sealed it.
    smtp_password_key_id      text,
    smtp_password_ciphertext  bytea,
    smtp_helo_name            text,
    smtp_connect_timeout_s    integer NOT NULL DEFAULT 15,
    smtp_command_timeout_s    integer NOT NULL DEFAULT 60,
    smtp_tls_server_name      text,
    smtp_tls_skip_verify      boolean NOT NULL DEFAULT false,
    default_sender_email      text NOT NULL,
    default_sender_name       text NOT NULL DEFAULT '',
    limit_per_minute          bigint,
    limit_per_hour            bigint,
    limit_per_day             bigint,
    monthly_quota             bigint,
    last_test                 jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'platform' OR (smtp_host IS NOT NULL AND smtp_port IS NOT NULL AND smtp_security IS NOT NULL)),
    CHECK ((smtp_password_key_id IS NULL) = (smtp_password_ciphertext IS NULL))
);

CREATE INDEX connectors_tenant_id_idx ON connectors (tenant_id, id);
-- At most one default connector per tenant.
CREATE UNIQUE INDEX connectors_one_default_idx ON connectors (tenant_id) WHERE is_default;

-- +goose Down
DROP TABLE connectors;
