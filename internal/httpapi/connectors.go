package httpapi

import (
	"context"

	"github.com/oapi-codegen/nullable"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
)

// ListConnectors pages through the tenant's connectors.
func (s *Server) ListConnectors(ctx context.Context, req api.ListConnectorsRequestObject) (api.ListConnectorsResponseObject, error) {
	limit, after, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	cs, err := s.connectors.List(ctx, tenantID(ctx), after, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListConnectors200JSONResponse{Items: make([]api.Connector, len(cs))}
	for i, c := range cs {
		out.Items[i] = toAPIConnector(c)
	}
	if len(cs) > 0 {
		out.NextCursor = nextCursor(cs[len(cs)-1].ID, len(cs), limit)
	}
	return out, nil
}

// CreateConnector stores a connector.
func (s *Server) CreateConnector(ctx context.Context, req api.CreateConnectorRequestObject) (api.CreateConnectorResponseObject, error) {
	c, err := s.connectors.Create(ctx, tenantID(ctx), connectorInput(req.Body))
	if err != nil {
		return nil, err
	}
	return api.CreateConnector201JSONResponse(toAPIConnector(c)), nil
}

// GetConnector returns one connector.
func (s *Server) GetConnector(ctx context.Context, req api.GetConnectorRequestObject) (api.GetConnectorResponseObject, error) {
	c, err := s.connectors.Get(ctx, tenantID(ctx), req.ConnectorId)
	if connector.IsNotFound(err) {
		return api.GetConnector404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetConnector200JSONResponse(toAPIConnector(c)), nil
}

// UpdateConnector applies a patch.
func (s *Server) UpdateConnector(ctx context.Context, req api.UpdateConnectorRequestObject) (api.UpdateConnectorResponseObject, error) {
	c, err := s.connectors.Update(ctx, tenantID(ctx), req.ConnectorId, connectorPatch(req.Body))
	if connector.IsNotFound(err) {
		return api.UpdateConnector404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateConnector200JSONResponse(toAPIConnector(c)), nil
}

// DeleteConnector removes a connector.
func (s *Server) DeleteConnector(ctx context.Context, req api.DeleteConnectorRequestObject) (api.DeleteConnectorResponseObject, error) {
	err := s.connectors.Delete(ctx, tenantID(ctx), req.ConnectorId)
	if connector.IsNotFound(err) {
		return api.DeleteConnector404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteConnector204Response{}, nil
}

// TestConnector runs the staged connection test on a saved connector.
func (s *Server) TestConnector(ctx context.Context, req api.TestConnectorRequestObject) (api.TestConnectorResponseObject, error) {
	res, err := s.connectors.Test(ctx, tenantID(ctx), req.ConnectorId)
	if connector.IsNotFound(err) {
		return api.TestConnector404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.TestConnector200JSONResponse(toAPITest(res)), nil
}

// TestConnectorSettings tests settings before they are saved.
func (s *Server) TestConnectorSettings(ctx context.Context, req api.TestConnectorSettingsRequestObject) (api.TestConnectorSettingsResponseObject, error) {
	res, err := s.connectors.TestInput(ctx, connectorInput(req.Body))
	if err != nil {
		return nil, err
	}
	return api.TestConnectorSettings200JSONResponse(toAPITest(res)), nil
}

// SendConnectorTestEmail sends a test message through a connector.
func (s *Server) SendConnectorTestEmail(ctx context.Context, req api.SendConnectorTestEmailRequestObject) (api.SendConnectorTestEmailResponseObject, error) {
	res, err := s.messages.SendTest(ctx, tenantID(ctx), req.ConnectorId, req.Body.To)
	if connector.IsNotFound(err) {
		return api.SendConnectorTestEmail404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "connector", req.ConnectorId)}, nil
	}
	if err != nil {
		return nil, err
	}
	out := api.SendConnectorTestEmail200JSONResponse{
		Id: res.ID, Ok: res.OK, From: res.From, To: res.To, DurationMs: res.Duration.Milliseconds(),
		Code: optString(res.Code), Message: optString(res.Message), MessageId: optString(res.MessageID),
		QueueId: optString(res.QueueID), RemoteAddr: optString(res.RemoteAddr), Reply: toAPIReply(res.Reply),
	}
	return out, nil
}

func notFound(ctx context.Context, kind, id string) api.NotFoundApplicationProblemPlusJSONResponse {
	return api.NotFoundApplicationProblemPlusJSONResponse(problemNotFound(ctx, kind, id))
}

func connectorInput(b *api.ConnectorCreate) connector.Input {
	in := connector.Input{Name: b.Name, Kind: string(b.Kind), Sender: fromAPISender(b.DefaultSender)}
	if b.Status != nil {
		in.Status = string(*b.Status)
	}
	if b.IsDefault != nil {
		in.IsDefault = *b.IsDefault
	}
	if b.Limits != nil {
		in.Limits.Apply(limitsPatch(b.Limits))
	}
	if m := b.Smtp; m != nil {
		in.SMTP = &connector.SMTPInput{
			Host: m.Host, Port: m.Port, Security: string(m.Security), Username: m.Username, Password: m.Password,
			HELOName: m.HeloName, ConnectTimeoutS: m.ConnectTimeoutSeconds, CommandTimeoutS: m.CommandTimeoutSeconds,
			TLSServerName: m.TlsServerName, TLSSkipVerify: m.TlsSkipVerify,
		}
		if m.AuthMechanism != nil {
			a := string(*m.AuthMechanism)
			in.SMTP.AuthMechanism = &a
		}
	}
	return in
}

func connectorPatch(b *api.ConnectorUpdate) connector.Patch {
	p := connector.Patch{Name: b.Name, MakeDefault: b.IsDefault != nil && bool(*b.IsDefault)}
	if b.Status != nil {
		st := string(*b.Status)
		p.Status = &st
	}
	if b.DefaultSender != nil {
		snd := fromAPISender(*b.DefaultSender)
		p.Sender = &snd
	}
	if b.Limits != nil {
		p.Limits = limitsPatch(b.Limits)
	}
	if m := b.Smtp; m != nil {
		p.SMTP = &connector.SMTPPatch{
			Host: m.Host, Port: m.Port, ConnectTimeoutS: m.ConnectTimeoutSeconds, CommandTimeoutS: m.CommandTimeoutSeconds,
			TLSSkipVerify: m.TlsSkipVerify, Username: optional(m.Username), Password: optional(m.Password),
			HELOName: optional(m.HeloName), TLSServerName: optional(m.TlsServerName),
		}
		if m.Security != nil {
			sec := string(*m.Security)
			p.SMTP.Security = &sec
		}
		if m.AuthMechanism != nil {
			a := string(*m.AuthMechanism)
			p.SMTP.AuthMechanism = &a
		}
	}
	return p
}

func limitsPatch(l *api.ConnectorLimits) *connector.LimitsPatch {
	return &connector.LimitsPatch{
		PerMinute: optional(l.PerMinute), PerHour: optional(l.PerHour),
		PerDay: optional(l.PerDay), MonthlyQuota: optional(l.MonthlyQuota),
	}
}

// optional maps JSON's absent / null / value to nil / {nil} / {&v}.
func optional[T any](n nullable.Nullable[T]) *connector.Optional[T] {
	if !n.IsSpecified() {
		return nil
	}
	if n.IsNull() {
		return &connector.Optional[T]{}
	}
	v := n.MustGet()
	return &connector.Optional[T]{Value: &v}
}

func fromAPISender(s api.Sender) connector.Sender {
	out := connector.Sender{Email: s.Email}
	if s.Name != nil {
		out.Name = *s.Name
	}
	return out
}

func toAPIConnector(c *connector.Connector) api.Connector {
	out := api.Connector{
		Id: c.ID, Name: c.Name, Kind: api.ConnectorKind(c.Kind), Status: api.ConnectorStatus(c.Status),
		IsDefault: c.IsDefault, DefaultSender: api.Sender{Email: c.Sender.Email, Name: optString(c.Sender.Name)},
		Limits: api.ConnectorLimits{
			PerMinute: nullInt64(c.Limits.PerMinute), PerHour: nullInt64(c.Limits.PerHour),
			PerDay: nullInt64(c.Limits.PerDay), MonthlyQuota: nullInt64(c.Limits.MonthlyQuota),
		},
		Warnings: c.Warnings(), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if c.LastTest != nil {
		t := toAPITest(c.LastTest)
		out.LastTest = &t
	}
	toAPIBreaker(&out, c.Breaker)
	if m := c.SMTP; m != nil {
		out.Smtp = &api.SMTPSettings{
			Host: m.Host, Port: m.Port, Security: api.SMTPSecurity(m.Security), AuthMechanism: api.SMTPAuthMechanism(m.AuthMechanism),
			Username: optString(m.Username), PasswordSet: m.PasswordSet, HeloName: optString(m.HELOName),
			ConnectTimeoutSeconds: int(m.ConnectTimeout.Seconds()), CommandTimeoutSeconds: int(m.CommandTimeout.Seconds()),
			TlsServerName: optString(m.TLSServerName), TlsSkipVerify: m.TLSSkipVerify,
		}
	}
	return out
}

func toAPITest(r *connector.TestResult) api.ConnectionTest {
	out := api.ConnectionTest{
		Ok: r.OK, Code: optString(r.Code), Message: optString(r.Message), Host: r.Host, Port: r.Port,
		Security: api.SMTPSecurity(r.Security), DurationMs: r.DurationMS, TestedAt: r.TestedAt,
		Steps: make([]api.ConnectionTestStep, len(r.Steps)),
	}
	for i, st := range r.Steps {
		out.Steps[i] = api.ConnectionTestStep{
			Name: api.ConnectionTestStepName(st.Name), Status: api.ConnectionTestStepStatus(st.Status),
			DurationMs: st.DurationMS, Detail: st.Detail, Reply: toAPIReply(st.Reply), Mechanism: optString(st.Mechanism),
		}
		if len(st.Capabilities) > 0 {
			caps := st.Capabilities
			out.Steps[i].Capabilities = &caps
		}
		if t := st.TLS; t != nil {
			out.Steps[i].Tls = &api.TLSInfo{
				Version: optString(t.Version), CipherSuite: optString(t.CipherSuite), ServerName: t.ServerName,
				Subject: t.Subject, Issuer: t.Issuer, NotAfter: t.NotAfter, Verified: t.Verified,
				VerifyError: optString(t.VerifyError),
			}
			if len(t.DNSNames) > 0 {
				names := t.DNSNames
				out.Steps[i].Tls.DnsNames = &names
			}
		}
	}
	return out
}

func toAPIReply(r *delivery.Reply) *api.SMTPReply {
	if r == nil {
		return nil
	}
	return &api.SMTPReply{Code: r.Code, EnhancedCode: optString(r.EnhancedCode), Text: r.Text}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toAPIBreaker adds the circuit breaker's state: why the connector is paused and the last
// failure it counted, with the upstream's reply.
func toAPIBreaker(out *api.Connector, b connector.Breaker) {
	n := b.ConsecutiveFailures
	out.ConsecutiveFailures = &n
	out.PausedAt = nullTime(b.PausedAt)
	out.PausedReason = nullable.NewNullNullable[api.ConnectorPausedReason]()
	if b.PausedReason != "" {
		out.PausedReason = nullable.NewNullableWithValue(api.ConnectorPausedReason(b.PausedReason))
	}
	if f := b.LastFailure; f != nil {
		out.LastFailure = &api.ConnectorFailure{Code: f.Code, Text: f.Text, At: f.At, EnhancedCode: optString(f.EnhancedCode)}
		if f.SMTPCode != 0 {
			out.LastFailure.SmtpCode = &f.SMTPCode
		}
	}
}
