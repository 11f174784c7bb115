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
ALTER TABLE messages
    ALTER COLUMN mime SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0,
    ALTER COLUMN last_reply SET STATISTICS 0;

-- +goose Down
ALTER TABLE events ALTER COLUMN data SET STATISTICS -1;
ALTER TABLE message_events ALTER COLUMN data SET STATISTICS -1;
ALTER TABLE messages
    ALTER COLUMN mime SET STATISTICS -1,
    ALTER COLUMN metadata SET STATISTICS -1,
    ALTER COLUMN last_reply SET STATISTICS -1;
