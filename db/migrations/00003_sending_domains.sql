-- +goose Up
-- A sender domain of a tenant. Each tenant proves its own claim with its own token, so two
-- tenants may hold the same domain; one tenant may not hold it twice.
CREATE TABLE sending_domains (
    id                    text PRIMARY KEY,
    tenant_id             text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The A-label (ASCII) form, lower case, without the trailing dot.
    domain                text NOT NULL CHECK (domain = lower(domain) AND length(domain) BETWEEN 3 AND 253),
    status                text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified', 'at_risk', 'revoked')),
    verification_token    text NOT NULL,
    dkim_selector         text NOT NULL,
    -- base64 of the DER SubjectPublicKeyInfo: the p= value customers publish.
    dkim_public_key       text NOT NULL,
    -- The PKCS#8 private key, AES-256-GCM ciphertext; the key id names the key that sealed it.
    dkim_private_key_id   text NOT NULL,
    dkim_private_key      bytea NOT NULL,
    -- The latest result of each check, in check order: [{"check": "ownership", ...}, ...].
    last_results          jsonb NOT NULL DEFAULT '[]',
    -- The last conclusive (pass or fail) SPF status: a temporary DNS error does not change it.
    spf_status            text CHECK (spf_status IN ('pass', 'fail')),
    verified_at           timestamptz,
    first_failed_at       timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    revokes_at            timestamptz,
    last_checked_at       timestamptz,
    next_check_at         timestamptz NOT NULL,
    last_manual_check_at  timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, domain)
);

CREATE INDEX sending_domains_tenant_id_idx ON sending_domains (tenant_id, id);
-- The scheduler reads due domains in next_check_at order.
CREATE INDEX sending_domains_next_check_idx ON sending_domains (next_check_at);

-- Every check of a domain, with each check's full result.
CREATE TABLE sending_domain_checks (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL,
    domain_id      text NOT NULL REFERENCES sending_domains (id) ON DELETE CASCADE,
    trigger        text NOT NULL CHECK (trigger IN ('manual', 'scheduled')),
    -- pass: every required check passed; fail: one failed authoritatively; temperror: DNS
    -- did not answer usably for a required check and none failed.
    outcome        text NOT NULL CHECK (outcome IN ('pass', 'fail', 'temperror')),
    status_before  text NOT NULL,
    status_after   text NOT NULL,
    results        jsonb NOT NULL,
    started_at     timestamptz NOT NULL,
    duration_ms    bigint NOT NULL
);

CREATE INDEX sending_domain_checks_domain_idx ON sending_domain_checks (tenant_id, domain_id, id DESC);
CREATE INDEX sending_domain_checks_started_idx ON sending_domain_checks (started_at);

-- What happened to a domain: its creation and every status change, with the reason.
CREATE TABLE sending_domain_events (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    domain_id    text NOT NULL REFERENCES sending_domains (id) ON DELETE CASCADE,
    type         text NOT NULL CHECK (type IN ('created', 'status_changed')),
    from_status  text,
    to_status    text NOT NULL,
    code         text NOT NULL DEFAULT '',
    reason       text NOT NULL,
    check_id     text,
    created_at   timestamptz NOT NULL
);

CREATE INDEX sending_domain_events_domain_idx ON sending_domain_events (tenant_id, domain_id, id DESC);

-- +goose Down
DROP TABLE sending_domain_events;
DROP TABLE sending_domain_checks;
DROP TABLE sending_domains;
