-- +goose Up
-- A message's row is updated twice per delivery attempt (sending, then the outcome). With
-- room left on each page and no index on status, those updates are HOT: PostgreSQL rewrites
-- the row in place and touches none of the seven indexes. The status filter of the message
-- log walks the tenant's newest-first index instead.
DROP INDEX messages_tenant_status_idx;
ALTER TABLE messages SET (fillfactor = 80);

-- +goose Down
ALTER TABLE messages RESET (fillfactor);
CREATE INDEX messages_tenant_status_idx ON messages (tenant_id, status, id DESC);
