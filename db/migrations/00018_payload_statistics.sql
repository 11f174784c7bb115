-- +goose Up
-- Cheaper ANALYZE of the tables every message writes to (issue 13).
--
-- Autovacuum analyzes messages, message_events and events whenever a tenth of their rows
-- changed, which on a young database under load is every minute or so. Most of that CPU went
-- to statistics of columns no query filters or joins on: the payloads (stream events' and
-- timeline steps' data, a message's body, metadata and last reply), whose samples were
-- detoasted and sorted. On a database of 60,000 messages, ANALYZE took 580 → 222 ms for
-- events, 450 → 142 ms for message_events and 670 → 550 ms for messages; in `make bench`
-- those analyzes running beside the latency phase were where its slowest deliveries fell.
-- The planner uses no statistics of these columns (no WHERE, ORDER BY or join reads them);
-- recipients and tags keep theirs (array searches estimate with them).
ALTER TABLE events ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE message_events ALTER COLUMN data SET STATISTICS 0;

-- The cost that remains is the sample itself: 300 rows per unit of the largest statistics
-- target (30,000 rows at the default 100), read and then sorted once per column. events and
-- message_events are logs read only through the leading columns of their indexes (a tenant's
-- stream by position, a message's timeline), where a sample of 3,000 rows tells the planner
-- all it uses (tenants' shares, ids unique, positions ascending); ANALYZE then took 40 and
-- 35 ms on that database. messages keeps the default: its listings combine filters
-- (status, connector, tags, recipients, dates) whose estimates need the larger sample.
ALTER TABLE events
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN tenant_id SET STATISTICS 10,
    ALTER COLUMN type SET STATISTICS 10,
    ALTER COLUMN created_at SET STATISTICS 10,
    ALTER COLUMN sequence SET STATISTICS 10,
    ALTER COLUMN xid SET STATISTICS 10,
    ALTER COLUMN message_id SET STATISTICS 10,
    ALTER COLUMN domain_id SET STATISTICS 10,
    ALTER COLUMN connector_id SET STATISTICS 10,
    ALTER COLUMN webhook_id SET STATISTICS 10;
ALTER TABLE message_events
    ALTER COLUMN id SET STATISTICS 10,
    ALTER COLUMN message_id SET STATISTICS 10,
    ALTER COLUMN tenant_id SET STATISTICS 10,
    ALTER COLUMN type SET STATISTICS 10,
    ALTER COLUMN at SET STATISTICS 10;
ALTER TABLE messages
    ALTER COLUMN mime SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0,
    ALTER COLUMN last_reply SET STATISTICS 0;
-- River's job table likewise: its payloads, which River's queries do not filter on (they
-- find jobs by id, state, queue and times; 00016 already dropped the GIN indexes over args
-- and metadata). ANALYZE took 400 → 220 ms.
ALTER TABLE river_job
    ALTER COLUMN args SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0,
    ALTER COLUMN errors SET STATISTICS 0;

-- +goose Down
ALTER TABLE river_job
    ALTER COLUMN args SET STATISTICS -1,
    ALTER COLUMN metadata SET STATISTICS -1,
    ALTER COLUMN errors SET STATISTICS -1;
ALTER TABLE events
    ALTER COLUMN data SET STATISTICS -1,
    ALTER COLUMN id SET STATISTICS -1,
    ALTER COLUMN tenant_id SET STATISTICS -1,
    ALTER COLUMN type SET STATISTICS -1,
    ALTER COLUMN created_at SET STATISTICS -1,
    ALTER COLUMN sequence SET STATISTICS -1,
    ALTER COLUMN xid SET STATISTICS -1,
    ALTER COLUMN message_id SET STATISTICS -1,
    ALTER COLUMN domain_id SET STATISTICS -1,
    ALTER COLUMN connector_id SET STATISTICS -1,
    ALTER COLUMN webhook_id SET STATISTICS -1;
ALTER TABLE message_events
    ALTER COLUMN data SET STATISTICS -1,
    ALTER COLUMN id SET STATISTICS -1,
    ALTER COLUMN message_id SET STATISTICS -1,
    ALTER COLUMN tenant_id SET STATISTICS -1,
    ALTER COLUMN type SET STATISTICS -1,
    ALTER COLUMN at SET STATISTICS -1;
ALTER TABLE messages
    ALTER COLUMN mime SET STATISTICS -1,
    ALTER COLUMN metadata SET STATISTICS -1,
    ALTER COLUMN last_reply SET STATISTICS -1;
