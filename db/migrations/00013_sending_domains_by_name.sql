-- +goose Up
-- An smtp connector's default sender is refused at a domain another tenant has verified
-- (SendingDomainVerifiedElsewhere, asked on every submission from a default sender): find
-- the tenants holding a domain with send rights without scanning every tenant's domains.
CREATE INDEX sending_domains_domain_send_rights_idx ON sending_domains (domain)
    WHERE status IN ('verified', 'at_risk');

-- +goose Down
DROP INDEX sending_domains_domain_send_rights_idx;
