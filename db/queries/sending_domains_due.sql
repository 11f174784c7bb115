-- SendingDomainListDue lists domains whose check is due at @now, across all tenants, most
-- overdue first, without claiming them: the operator's view of the check backlog
-- (`sendwerk admin domains due`). The scheduler claims with SendingDomainClaimDue.
-- name: SendingDomainListDue :many
SELECT * FROM sending_domains
WHERE next_check_at <= @now
ORDER BY next_check_at, id
LIMIT @max;
