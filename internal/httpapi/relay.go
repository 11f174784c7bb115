package httpapi

import (
	"context"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/connector"
)

// RelayHost is where the SMTP relay host listens, as mail servers should be told: the name
// on its certificate and the public ports (0: that listener is off).
type RelayHost struct {
	Host         string
	StartTLSPort int
	TLSPort      int
}

// ListRelayCredentials pages through a connector's relay credentials.
func (s *Server) ListRelayCredentials(ctx context.Context, req api.ListRelayCredentialsRequestObject) (api.ListRelayCredentialsResponseObject, error) {
	limit, after, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	if _, err := s.connectors.Get(ctx, tenantID(ctx), req.ConnectorId); connector.IsNotFound(err) {
		return api.ListRelayCredentials404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	} else if err != nil {
		return nil, err
	}
	list, err := s.relayCreds.List(ctx, tenantID(ctx), req.ConnectorId, after, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListRelayCredentials200JSONResponse{Items: make([]api.RelayCredential, len(list))}
	for i, c := range list {
		out.Items[i] = toAPIRelayCredential(c)
	}
	if len(list) > 0 {
		out.NextCursor = nextCursor(list[len(list)-1].ID, len(list), limit)
	}
	return out, nil
}

// CreateRelayCredential makes a login for the SMTP relay host; the password is in this
// answer only.
func (s *Server) CreateRelayCredential(ctx context.Context, req api.CreateRelayCredentialRequestObject) (api.CreateRelayCredentialResponseObject, error) {
	name := ""
	if req.Body != nil && req.Body.Name != nil {
		name = *req.Body.Name
	}
	c, password, err := s.relayCreds.Create(ctx, tenantID(ctx), req.ConnectorId, name)
	if connector.IsNotFound(err) {
		return api.CreateRelayCredential404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	a := toAPIRelayCredential(c)
	return api.CreateRelayCredential201JSONResponse{
		Id: a.Id, ConnectorId: a.ConnectorId, Name: a.Name, Username: a.Username, Status: api.RelayCredentialCreatedStatus(a.Status),
		CreatedAt: a.CreatedAt, LastUsedAt: a.LastUsedAt, RevokedAt: a.RevokedAt, Password: password, RelayHost: s.apiRelayHost(),
	}, nil
}

// RevokeRelayCredential stops a relay credential from working.
func (s *Server) RevokeRelayCredential(ctx context.Context, req api.RevokeRelayCredentialRequestObject) (api.RevokeRelayCredentialResponseObject, error) {
	c, err := s.relayCreds.Revoke(ctx, tenantID(ctx), req.ConnectorId, req.CredentialId)
	if connector.IsNotFound(err) {
		return api.RevokeRelayCredential404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "relay credential", req.CredentialId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RevokeRelayCredential200JSONResponse(toAPIRelayCredential(c)), nil
}

func toAPIRelayCredential(c *connector.RelayCredential) api.RelayCredential {
	return api.RelayCredential{
		Id: c.ID, ConnectorId: c.ConnectorID, Name: c.Name, Username: c.Username, Status: api.RelayCredentialStatus(c.Status()),
		CreatedAt: c.CreatedAt, LastUsedAt: nullTime(c.LastUsedAt), RevokedAt: nullTime(c.RevokedAt),
	}
}

func (s *Server) apiRelayHost() api.RelayHost {
	h := api.RelayHost{Host: s.relayHost.Host}
	if s.relayHost.StartTLSPort != 0 {
		h.StarttlsPort = &s.relayHost.StartTLSPort
	}
	if s.relayHost.TLSPort != 0 {
		h.TlsPort = &s.relayHost.TLSPort
	}
	return h
}
