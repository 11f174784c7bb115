package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"

	"github.com/oapi-codegen/nullable"

	"github.com/sendwerk/sendwerk/api"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
)

// ListDomains pages through the tenant's sender domains.
func (s *Server) ListDomains(ctx context.Context, req api.ListDomainsRequestObject) (api.ListDomainsResponseObject, error) {
	limit, after, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	ds, err := s.domains.List(ctx, tenantID(ctx), after, limit)
	if err != nil {
		return nil, err
	}
	out := api.ListDomains200JSONResponse{Items: make([]api.Domain, len(ds))}
	for i, d := range ds {
		out.Items[i] = toAPIDomain(d)
	}
	if len(ds) > 0 {
		out.NextCursor = nextCursor(ds[len(ds)-1].ID, len(ds), limit)
	}
	return out, nil
}

// CreateDomain adds a sender domain.
func (s *Server) CreateDomain(ctx context.Context, req api.CreateDomainRequestObject) (api.CreateDomainResponseObject, error) {
	nd := sendingdomain.NewDomain{Name: req.Body.Domain, Ed25519: req.Body.DkimEd25519 != nil && *req.Body.DkimEd25519}
	if days, err := req.Body.DkimRotationDays.Get(); err == nil {
		nd.RotationDays = &days
	}
	d, err := s.domains.CreateDomain(ctx, tenantID(ctx), nd)
	var dup *sendingdomain.DuplicateError
	if errors.As(err, &dup) {
		detail := fmt.Sprintf("domain %s is already added (%s); each domain can be added once", dup.Domain, dup.ID)
		p := newProblem(http.StatusConflict, TypeConflict, "Conflict", detail)
		return api.CreateDomain409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: api.ConflictApplicationProblemPlusJSONResponse(stamp(ctx, p.Problem))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.CreateDomain201JSONResponse(toAPIDomain(d)), nil
}

// GetDomain returns one domain.
func (s *Server) GetDomain(ctx context.Context, req api.GetDomainRequestObject) (api.GetDomainResponseObject, error) {
	d, err := s.domains.Get(ctx, tenantID(ctx), req.DomainId)
	if sendingdomain.IsNotFound(err) {
		return api.GetDomain404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.GetDomain200JSONResponse(toAPIDomain(d)), nil
}

// DeleteDomain removes a domain.
func (s *Server) DeleteDomain(ctx context.Context, req api.DeleteDomainRequestObject) (api.DeleteDomainResponseObject, error) {
	err := s.domains.Delete(ctx, tenantID(ctx), req.DomainId)
	if sendingdomain.IsNotFound(err) {
		return api.DeleteDomain404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteDomain204Response{}, nil
}

// UpdateDomain changes how a domain signs (Ed25519 beside RSA, scheduled rotation).
func (s *Server) UpdateDomain(ctx context.Context, req api.UpdateDomainRequestObject) (api.UpdateDomainResponseObject, error) {
	var p sendingdomain.DKIMPolicy
	p.Ed25519 = req.Body.DkimEd25519
	if req.Body.DkimRotationDays.IsSpecified() {
		var days *int
		if v, err := req.Body.DkimRotationDays.Get(); err == nil {
			days = &v
		}
		p.RotationDays = &days
	}
	d, err := s.domains.UpdateDKIMPolicy(ctx, tenantID(ctx), req.DomainId, p)
	if sendingdomain.IsNotFound(err) {
		return api.UpdateDomain404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateDomain200JSONResponse(toAPIDomain(d)), nil
}

// RotateDomainDKIM starts a key rotation: the next key, pending until its record verifies.
func (s *Server) RotateDomainDKIM(ctx context.Context, req api.RotateDomainDKIMRequestObject) (api.RotateDomainDKIMResponseObject, error) {
	alg := ""
	if req.Body != nil && req.Body.Algorithm != nil {
		alg = string(*req.Body.Algorithm)
	}
	d, err := s.domains.Rotate(ctx, tenantID(ctx), req.DomainId, alg)
	if sendingdomain.IsNotFound(err) {
		return api.RotateDomainDKIM404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	var pending *sendingdomain.RotationPendingError
	if errors.As(err, &pending) {
		p := newProblem(http.StatusConflict, TypeConflict, "Conflict", pending.Error())
		return api.RotateDomainDKIM409ApplicationProblemPlusJSONResponse{ConflictApplicationProblemPlusJSONResponse: api.ConflictApplicationProblemPlusJSONResponse(stamp(ctx, p.Problem))}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.RotateDomainDKIM200JSONResponse(s.apiRecords(d)), nil
}

// PreviewDomain runs the checks over records the tenant intends to publish.
func (s *Server) PreviewDomain(ctx context.Context, req api.PreviewDomainRequestObject) (api.PreviewDomainResponseObject, error) {
	b := req.Body
	p := sendingdomain.Preview{SPF: deref(b.Spf), Ownership: deref(b.Ownership), DMARC: deref(b.Dmarc), Zone: deref(b.Zone)}
	if b.Dkim != nil {
		for _, k := range *b.Dkim {
			p.DKIM = append(p.DKIM, sendingdomain.PreviewDKIM{Selector: k.Selector, Value: k.Value})
		}
	}
	res, err := s.domains.Preview(ctx, tenantID(ctx), req.DomainId, p)
	if sendingdomain.IsNotFound(err) {
		return api.PreviewDomain404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	names := res.Names
	sort.Strings(names)
	return api.PreviewDomain200JSONResponse{DomainId: req.DomainId, Outcome: api.DomainPreviewOutcome(res.Outcome), Results: toAPIResults(res.Results), Names: names}, nil
}

// GetDomainRecords lists the records to publish, as JSON or as a zone-file snippet.
func (s *Server) GetDomainRecords(ctx context.Context, req api.GetDomainRecordsRequestObject) (api.GetDomainRecordsResponseObject, error) {
	d, err := s.domains.Get(ctx, tenantID(ctx), req.DomainId)
	if sendingdomain.IsNotFound(err) {
		return api.GetDomainRecords404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	recs := s.domains.Records(d)
	if req.Params.Format != nil && *req.Params.Format == api.GetDomainRecordsParamsFormatZone {
		return api.GetDomainRecords200TextResponse(sendingdomain.ZoneFile(d, recs)), nil
	}
	return api.GetDomainRecords200JSONResponse(s.apiRecords(d)), nil
}

func (s *Server) apiRecords(d *sendingdomain.Domain) api.DomainRecords {
	recs := s.domains.Records(d)
	out := api.DomainRecords{DomainId: d.ID, Domain: d.Name, Status: api.DomainStatus(d.Status), Records: make([]api.DomainRecord, len(recs))}
	for i, r := range recs {
		out.Records[i] = toAPIRecord(r)
	}
	return out
}

// CheckDomain checks a domain now.
func (s *Server) CheckDomain(ctx context.Context, req api.CheckDomainRequestObject) (api.CheckDomainResponseObject, error) {
	d, chk, err := s.domains.Check(ctx, tenantID(ctx), req.DomainId)
	if sendingdomain.IsNotFound(err) {
		return api.CheckDomain404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	var rl *sendingdomain.RateLimitError
	if errors.As(err, &rl) {
		secs := int(math.Ceil(rl.RetryAfter.Seconds()))
		p := newProblem(http.StatusTooManyRequests, TypeRateLimited, "Too many requests", rl.Error())
		return api.CheckDomain429ApplicationProblemPlusJSONResponse{RateLimitedApplicationProblemPlusJSONResponse: api.RateLimitedApplicationProblemPlusJSONResponse{
			Body: stamp(ctx, p.Problem), Headers: api.RateLimitedResponseHeaders{RetryAfter: &secs},
		}}, nil
	}
	if err != nil {
		return nil, err
	}
	return api.CheckDomain200JSONResponse{Domain: toAPIDomain(d), Check: toAPICheck(chk)}, nil
}

// ListDomainChecks pages through a domain's check history, newest first.
func (s *Server) ListDomainChecks(ctx context.Context, req api.ListDomainChecksRequestObject) (api.ListDomainChecksResponseObject, error) {
	limit, before, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	cs, err := s.domains.ListChecks(ctx, tenantID(ctx), req.DomainId, before, limit)
	if sendingdomain.IsNotFound(err) {
		return api.ListDomainChecks404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	out := api.ListDomainChecks200JSONResponse{Items: make([]api.DomainCheck, len(cs))}
	for i, c := range cs {
		out.Items[i] = toAPICheck(c)
	}
	if len(cs) > 0 {
		out.NextCursor = nextCursor(cs[len(cs)-1].ID, len(cs), limit)
	}
	return out, nil
}

// ListDomainEvents pages through a domain's events, newest first.
func (s *Server) ListDomainEvents(ctx context.Context, req api.ListDomainEventsRequestObject) (api.ListDomainEventsResponseObject, error) {
	limit, before, err := page(req.Params.Limit, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	es, err := s.domains.ListEvents(ctx, tenantID(ctx), req.DomainId, before, limit)
	if sendingdomain.IsNotFound(err) {
		return api.ListDomainEvents404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound(ctx, "domain", req.DomainId)}, nil
	}
	if err != nil {
		return nil, err
	}
	out := api.ListDomainEvents200JSONResponse{Items: make([]api.DomainEvent, len(es))}
	for i, e := range es {
		out.Items[i] = api.DomainEvent{
			Id: e.ID, DomainId: e.DomainID, Type: api.DomainEventType(e.Type), ToStatus: api.DomainStatus(e.ToStatus),
			Code: e.Code, Reason: e.Reason, CheckId: optString(e.CheckID), CreatedAt: e.CreatedAt,
			FromStatus: nullable.NewNullNullable[api.DomainEventFromStatus](),
		}
		if e.FromStatus != "" {
			out.Items[i].FromStatus = nullable.NewNullableWithValue(api.DomainEventFromStatus(e.FromStatus))
		}
	}
	if len(es) > 0 {
		out.NextCursor = nextCursor(es[len(es)-1].ID, len(es), limit)
	}
	return out, nil
}

func toAPIDomain(d *sendingdomain.Domain) api.Domain {
	out := api.Domain{
		Id: d.ID, Domain: d.Name, DomainUnicode: d.Unicode(), Status: api.DomainStatus(d.Status), SendAllowed: d.CanSend(),
		DkimSelector: d.DKIMSelector, Checks: toAPIResults(d.Results), VerifiedAt: nullTime(d.VerifiedAt),
		FirstFailedAt: nullTime(d.FirstFailedAt), ConsecutiveFailures: d.ConsecutiveFailures, RevokesAt: nullTime(d.RevokesAt),
		LastCheckedAt: nullTime(d.LastCheckedAt), NextCheckAt: d.NextCheckAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		SpfStatus: nullable.NewNullNullable[api.DomainSpfStatus](), DkimEd25519: d.DKIMEd25519,
		DkimRotationDays: nullable.NewNullNullable[int](), DkimKeys: make([]api.DomainDKIMKey, len(d.DKIMKeys)),
	}
	if d.SPFStatus != "" {
		out.SpfStatus = nullable.NewNullableWithValue(api.DomainSpfStatus(d.SPFStatus))
	}
	if d.DKIMRotationDays != nil {
		out.DkimRotationDays = nullable.NewNullableWithValue(*d.DKIMRotationDays)
	}
	for i, k := range d.DKIMKeys {
		out.DkimKeys[i] = api.DomainDKIMKey{
			Selector: k.Selector, Algorithm: api.DomainDKIMKeyAlgorithm(k.Algorithm), State: api.DomainDKIMKeyState(k.State),
			CreatedAt: k.CreatedAt, ActivatedAt: nullTime(k.ActivatedAt), RetireAfter: nullTime(k.RetireAfter),
		}
	}
	return out
}

func toAPICheck(c *sendingdomain.Check) api.DomainCheck {
	return api.DomainCheck{
		Id: c.ID, DomainId: c.DomainID, Trigger: api.DomainCheckTrigger(c.Trigger), Outcome: api.DomainCheckOutcome(c.Outcome),
		StatusBefore: api.DomainStatus(c.StatusBefore), StatusAfter: api.DomainStatus(c.StatusAfter),
		Results: toAPIResults(c.Results), StartedAt: c.StartedAt, DurationMs: c.Duration.Milliseconds(),
	}
}

func toAPIResults(rs []dnscheck.CheckResult) []api.DomainCheckResult {
	out := make([]api.DomainCheckResult, len(rs))
	for i, r := range rs {
		out[i] = toAPIResult(r)
	}
	return out
}

func toAPIResult(r dnscheck.CheckResult) api.DomainCheckResult {
	out := api.DomainCheckResult{
		Check: api.DomainCheckResultCheck(r.Check), Selector: optString(r.Selector), Status: api.DomainCheckResultStatus(r.Status), Code: r.Code,
		Message: r.Message, Expected: r.Expected, Observed: r.Observed, Resolver: optString(r.Resolver),
		CheckedAt: r.CheckedAt, DurationMs: r.Duration.Milliseconds(),
	}
	if out.Observed == nil {
		out.Observed = []string{}
	}
	if sp := r.SPF; sp != nil {
		out.Spf = &api.SPFDetails{Record: optString(sp.Record), Lookups: sp.Lookups, SuggestedRecord: optString(sp.SuggestedRecord)}
		if len(sp.IncludePath) > 0 {
			out.Spf.IncludePath = &sp.IncludePath
		}
		if len(sp.Evaluations) > 0 {
			evs := make([]api.SPFEvaluation, len(sp.Evaluations))
			for j, ev := range sp.Evaluations {
				evs[j] = api.SPFEvaluation{
					Ip: ev.IP, Result: api.SPFEvaluationResult(ev.Result), Mechanism: optString(ev.Mechanism),
					Explanation: optString(ev.Explanation), Message: optString(ev.Message), DnsLookups: ev.DNSLookups, VoidLookups: ev.VoidLookups,
				}
			}
			out.Spf.Evaluations = &evs
		}
	}
	if dm := r.DMARC; dm != nil {
		out.Dmarc = &api.DMARCPolicy{
			Domain: dm.Domain, Record: dm.Record, Policy: dm.Policy, SubdomainPolicy: optString(dm.SubdomainPolicy),
			Adkim: dm.ADKIM, Aspf: dm.ASPF, Pct: dm.Percent,
		}
		if len(dm.RUA) > 0 {
			out.Dmarc.Rua = &dm.RUA
		}
	}
	return out
}

func toAPIRecord(r sendingdomain.Record) api.DomainRecord {
	out := api.DomainRecord{
		Purpose: api.DomainRecordPurpose(r.Purpose), Requirement: api.DomainRecordRequirement(r.Requirement),
		Type: api.DomainRecordType(r.Type), Host: r.Host, Zone: r.Zone, Fqdn: r.FQDN, Value: r.Value, Ttl: r.TTL,
		Status: api.DomainRecordStatusPending, Selector: optString(r.Selector), RemoveAfter: r.RemoveAfter,
	}
	if r.KeyState != "" {
		st := api.DomainRecordKeyState(r.KeyState)
		out.KeyState = &st
	}
	if c := r.Check; c != nil {
		out.Status = api.DomainRecordStatus(c.Status)
		out.Code, out.Message, out.CheckedAt = &c.Code, &c.Message, &c.CheckedAt
	}
	return out
}
