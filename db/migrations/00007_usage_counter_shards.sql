-- +goose Up
-- A counter row is locked from a submission's increment until its commit, so one row per
-- tenant and period serialises every submission of the tenant. Periods without a limit now
-- count into one of several shards (no check needs their exact sum while the transaction
-- runs); periods with a limit keep counting exactly in shard 0.
ALTER TABLE usage_counters ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE usage_counters DROP CONSTRAINT usage_counters_pkey;
ALTER TABLE usage_counters ADD PRIMARY KEY (scope_id, period, period_start, shard);

-- +goose Down
DELETE FROM usage_counters WHERE shard <> 0;
ALTER TABLE usage_counters DROP CONSTRAINT usage_counters_pkey;
ALTER TABLE usage_counters ADD PRIMARY KEY (scope_id, period, period_start);
ALTER TABLE usage_counters DROP COLUMN shard;
