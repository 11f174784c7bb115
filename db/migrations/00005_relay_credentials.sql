-- +goose Up
-- Relay credentials let a mail server log in to the SMTP submission listener (relay host)
-- and send through one connector. The user name is global (SMTP AUTH carries no tenant);
-- the password is stored only as an argon2id hash.
CREATE TABLE relay_credentials (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connector_id   text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    name           text NOT NULL DEFAULT '',
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX relay_credentials_connector_idx ON relay_credentials (tenant_id, connector_id, id);

-- +goose Down
DROP TABLE relay_credentials;
