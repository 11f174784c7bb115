package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// Senders of the benchmark: the verified domain's address (DKIM-signed) and the smtp
// connector's own default sender (sent unsigned: the tenant's server would sign it).
const (
	dkimDomain     = "bench.example"
	senderDKIM     = "noreply@" + dkimDomain
	senderUnsigned = "noreply@unsigned.example"
	recipient      = "rcpt@sink.bench.example"
)

// tenantSetup is what the load needs: an API key whose tenant's default connector is an
// smtp connector to the sink, and a verified sender domain.
type tenantSetup struct {
	key         string
	tenantID    string
	connectorID string
	domainID    string
	// relayUser and relayPass log in at the relay host for the connector.
	relayUser, relayPass string
}

func setupTenant(ctx context.Context, baseURL, adminToken string, sinkPort int, dns *dnsServer) (*tenantSetup, error) {
	admin, err := newClient(baseURL, adminToken)
	if err != nil {
		return nil, err
	}
	tr, err := admin.CreateTenantWithResponse(ctx, sendwerk.CreateTenantJSONRequestBody{Name: "Benchmark"})
	if err != nil {
		return nil, fmt.Errorf("create tenant: %w", err)
	}
	if tr.JSON201 == nil {
		return nil, fmt.Errorf("create tenant: HTTP %d %s", tr.StatusCode(), tr.Body)
	}
	kr, err := admin.CreateTenantApiKeyWithResponse(ctx, tr.JSON201.Id, sendwerk.ApiKeyCreate{
		Name: "bench", Scopes: []sendwerk.Scope{sendwerk.ScopeManage, sendwerk.ScopeMessagesSend},
	})
	if err != nil {
		return nil, fmt.Errorf("create api key: %w", err)
	}
	if kr.JSON201 == nil {
		return nil, fmt.Errorf("create api key: HTTP %d %s", kr.StatusCode(), kr.Body)
	}
	c, err := newClient(baseURL, kr.JSON201.Secret)
	if err != nil {
		return nil, err
	}
	cr, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "sink", Kind: sendwerk.ConnectorKindSmtp,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: sinkPort, Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: senderUnsigned},
	})
	if err != nil {
		return nil, fmt.Errorf("create connector: %w", err)
	}
	if cr.JSON201 == nil {
		return nil, fmt.Errorf("create connector: HTTP %d %s", cr.StatusCode(), cr.Body)
	}
	dr, err := c.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: dkimDomain})
	if err != nil {
		return nil, fmt.Errorf("create domain: %w", err)
	}
	if dr.JSON201 == nil {
		return nil, fmt.Errorf("create domain: HTTP %d %s", dr.StatusCode(), dr.Body)
	}
	zone, err := getText(ctx, baseURL+"/v1/domains/"+dr.JSON201.Id+"/records?format=zone", kr.JSON201.Secret)
	if err != nil {
		return nil, err
	}
	if err := dns.load(zone); err != nil {
		return nil, fmt.Errorf("error loading the domain's records: %w", err)
	}
	chk, err := c.CheckDomainWithResponse(ctx, dr.JSON201.Id)
	if err != nil {
		return nil, fmt.Errorf("check domain: %w", err)
	}
	if chk.JSON200 == nil {
		return nil, fmt.Errorf("check domain: HTTP %d %s", chk.StatusCode(), chk.Body)
	}
	if chk.JSON200.Domain.Status != sendwerk.DomainStatusVerified {
		return nil, fmt.Errorf("domain %s is %s after its check, not verified: %s", dkimDomain, chk.JSON200.Domain.Status, chk.Body)
	}
	return &tenantSetup{key: kr.JSON201.Secret, tenantID: tr.JSON201.Id, connectorID: cr.JSON201.Id, domainID: dr.JSON201.Id}, nil
}

func newClient(baseURL, token string) (*sendwerk.ClientWithResponses, error) {
	return sendwerk.NewClientWithResponses(baseURL, sendwerk.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
}

func getText(ctx context.Context, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), nil
}
