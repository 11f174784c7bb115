-- +goose Up
-- events is each tenant's append-only stream of typed events (the outbox). A row is written
-- in the same transaction as the state change it reports, so a rolled-back change leaves no
-- event and a committed one is never lost; webhooks are dispatched from here.
CREATE TABLE events (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- sequence grows with every event: later events of one resource have larger values.
    sequence      bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    -- xid is the writing transaction. Readers page by (xid, sequence) and only see events
    -- below event_horizon(): an event that commits late can never land behind a cursor a
    -- reader already passed.
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    message_id    text,
    domain_id     text,
    connector_id  text,
    webhook_id    text,
    data          jsonb NOT NULL DEFAULT '{}'
);

-- A message event is written with every message state change, so it touches only four
-- indexes: the primary key (time-ordered ids: retention deletes by id range), the tenant's
-- feed, the dispatcher's position and its message. Events about a connector itself (not its
-- messages), a domain or a webhook are rare and indexed apart.
CREATE INDEX events_tenant_position_idx ON events (tenant_id, xid, sequence);
CREATE INDEX events_position_idx ON events (xid, sequence);
CREATE INDEX events_message_idx ON events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX events_domain_idx ON events (domain_id) WHERE domain_id IS NOT NULL;
CREATE INDEX events_connector_idx ON events (connector_id) WHERE connector_id IS NOT NULL AND message_id IS NULL;
CREATE INDEX events_webhook_idx ON events (webhook_id) WHERE webhook_id IS NOT NULL;

-- event_horizon is the oldest transaction that may still append events to this database:
-- the oldest one running at the statement's snapshot, not counting those known to belong to
-- other databases of the cluster (a long transaction elsewhere must not stall the feed). A
-- transaction that finished between the snapshot and the look at pg_stat_activity counts,
-- which only delays its events until the next read.
-- +goose StatementBegin
CREATE FUNCTION event_horizon() RETURNS xid8 LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                           WHERE a.backend_xid = x::xid AND a.datname IS DISTINCT FROM current_database())
         ORDER BY x LIMIT 1),
        pg_snapshot_xmax(pg_current_snapshot()))
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION event_horizon();
DROP TABLE events;
