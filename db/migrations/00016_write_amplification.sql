-- +goose Up
-- Less written per delivered message (every index entry and row lock is WAL, and WAL is
-- about a fifth of PostgreSQL's CPU under load).

-- River's GIN indexes on its job's args and metadata are written on every job insert and
-- on each of its state changes (none of which is HOT: state is indexed), two GIN inserts
-- each time. Sendwerk never looks jobs up by args or metadata (unique jobs use unique_key);
-- the job dashboard's filters by them scan instead. River creates them in its own
-- migrations, which run before these and never touch them again; the River client is told
-- not to reindex them (jobs.ReindexedIndexes).
DROP INDEX IF EXISTS river_job_args_index;
DROP INDEX IF EXISTS river_job_metadata_index;

-- The stream and the timelines are written with every message state change, and each row's
-- foreign key check locked its tenant's or message's row (FOR KEY SHARE: a WAL record, and a
-- MultiXact when several commits share the row). Every writer of these rows already holds
-- the row they belong to (the message it inserted or updated in the same transaction, or a
-- row of the tenant it locked), and a tenant's deletion removes its events and timelines
-- itself, after the cascade (TenantDelete in internal/tenant). The timelines are indexed by
-- tenant first, so that deletion does not scan every tenant's.
ALTER TABLE events DROP CONSTRAINT events_tenant_id_fkey;
ALTER TABLE message_events DROP CONSTRAINT message_events_message_id_fkey;
CREATE INDEX message_events_tenant_message_idx ON message_events (tenant_id, message_id, id);
DROP INDEX message_events_message_idx;

-- A message row (about 930 bytes with its compressed body) is updated twice per attempt,
-- moments after its insert. At fillfactor 80 only about 60 % of those updates found room on
-- the row's page (HOT); the others wrote a new row elsewhere and an entry in each of the six
-- indexes, two of them GIN. With half of each page free, about 90 % are HOT, and the table
-- is barely larger (the row versions that did not fit had made it as large already).
ALTER TABLE messages SET (fillfactor = 50);

-- +goose Down
ALTER TABLE messages SET (fillfactor = 80);
CREATE INDEX message_events_message_idx ON message_events (message_id, id);
DROP INDEX message_events_tenant_message_idx;
ALTER TABLE message_events ADD CONSTRAINT message_events_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE events ADD CONSTRAINT events_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS river_job_args_index ON river_job USING GIN (args);
CREATE INDEX IF NOT EXISTS river_job_metadata_index ON river_job USING GIN (metadata);
