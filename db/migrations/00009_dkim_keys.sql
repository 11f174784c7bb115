-- +goose Up
-- The DKIM keys of a sender domain. A domain signs with its active key of each algorithm
-- (rsa, and ed25519 when enabled); a rotation adds a pending key under a new selector,
-- which becomes active once its record verifies, and the key it replaces stays listed as
-- retiring until retire_after (the overlap while receivers still verify mail signed with
-- it), then is deleted.
CREATE TABLE sending_domain_dkim_keys (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL,
    domain_id       text NOT NULL REFERENCES sending_domains (id) ON DELETE CASCADE,
    selector        text NOT NULL,
    algorithm       text NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    -- The p= value: base64 of the DER SubjectPublicKeyInfo (rsa) or of the raw key (ed25519).
    public_key      text NOT NULL,
    -- The PKCS#8 private key, AES-256-GCM ciphertext sealed with the domain's key context.
    private_key_id  text NOT NULL,
    private_key     bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'active', 'retiring')),
    created_at      timestamptz NOT NULL,
    activated_at    timestamptz,
    retire_after    timestamptz,
    UNIQUE (domain_id, selector)
);

CREATE INDEX sending_domain_dkim_keys_domain_idx ON sending_domain_dkim_keys (tenant_id, domain_id);
-- Signing takes "the" active key of an algorithm, and a rotation is one pending key at a time.
CREATE UNIQUE INDEX sending_domain_dkim_keys_active_idx ON sending_domain_dkim_keys (domain_id, algorithm) WHERE state = 'active';
CREATE UNIQUE INDEX sending_domain_dkim_keys_pending_idx ON sending_domain_dkim_keys (domain_id, algorithm) WHERE state = 'pending';

-- Each domain's key so far becomes its active rsa key (same UUID, key-id prefix).
INSERT INTO sending_domain_dkim_keys (id, tenant_id, domain_id, selector, algorithm, public_key, private_key_id, private_key, state, created_at, activated_at)
SELECT 'dkk_' || substr(id, 5), tenant_id, id, dkim_selector, 'rsa', dkim_public_key, dkim_private_key_id, dkim_private_key, 'active', created_at, coalesce(verified_at, created_at)
FROM sending_domains;

ALTER TABLE sending_domains
    DROP COLUMN dkim_selector,
    DROP COLUMN dkim_public_key,
    DROP COLUMN dkim_private_key_id,
    DROP COLUMN dkim_private_key,
    -- Sign with an Ed25519 key beside the RSA key (RFC 8463).
    ADD COLUMN dkim_ed25519 boolean NOT NULL DEFAULT false,
    -- Rotate the keys every this many days (a pending key is created ahead of time); NULL: only on request.
    ADD COLUMN dkim_rotation_days integer CHECK (dkim_rotation_days BETWEEN 30 AND 3650),
    -- Numbers new selectors, so a selector is never used twice for a domain.
    ADD COLUMN dkim_generation integer NOT NULL DEFAULT 1;

ALTER TABLE sending_domain_events DROP CONSTRAINT sending_domain_events_type_check;
ALTER TABLE sending_domain_events ADD CONSTRAINT sending_domain_events_type_check
    CHECK (type IN ('created', 'status_changed', 'dkim_rotation_due', 'dkim_key_activated', 'dkim_key_retired'));

-- +goose Down
DELETE FROM sending_domain_events WHERE type NOT IN ('created', 'status_changed');
ALTER TABLE sending_domain_events DROP CONSTRAINT sending_domain_events_type_check;
ALTER TABLE sending_domain_events ADD CONSTRAINT sending_domain_events_type_check CHECK (type IN ('created', 'status_changed'));

ALTER TABLE sending_domains
    DROP COLUMN dkim_generation,
    DROP COLUMN dkim_rotation_days,
    DROP COLUMN dkim_ed25519,
    ADD COLUMN dkim_selector text,
    ADD COLUMN dkim_public_key text,
    ADD COLUMN dkim_private_key_id text,
    ADD COLUMN dkim_private_key bytea;

UPDATE sending_domains d SET dkim_selector = k.selector, dkim_public_key = k.public_key,
    dkim_private_key_id = k.private_key_id, dkim_private_key = k.private_key
FROM sending_domain_dkim_keys k
WHERE k.domain_id = d.id AND k.algorithm = 'rsa' AND k.state = 'active';

ALTER TABLE sending_domains
    ALTER COLUMN dkim_selector SET NOT NULL,
    ALTER COLUMN dkim_public_key SET NOT NULL,
    ALTER COLUMN dkim_private_key_id SET NOT NULL,
    ALTER COLUMN dkim_private_key SET NOT NULL;

DROP TABLE sending_domain_dkim_keys;
