package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// SuppressedRecipient is a recipient left out because the tenant's suppression list has it.
type SuppressedRecipient struct {
	Address string             `json:"address"`
	Reason  suppression.Reason `json:"reason"`
}

// SuppressedError refuses a submission whose every recipient is suppressed: a refusal like
// those in refusal.go, naming each address under "recipients" (422 over HTTP); the relay
// answers it at RCPT with 550 5.1.1 or 5.7.1.
type SuppressedError struct {
	Recipients []SuppressedRecipient
}

func (e *SuppressedError) Error() string { return e.fields().Error() }

// Unwrap exposes the field error.
func (e *SuppressedError) Unwrap() error { return e.fields() }

// FieldErrors names each suppressed recipient under "recipients", like the other refusals.
func (e *SuppressedError) FieldErrors() []validate.FieldError { return e.fields().Fields }

func (e *SuppressedError) fields() *validate.Error {
	v := &validate.Error{}
	for _, r := range e.Recipients {
		v.Add("recipients", fmt.Sprintf("%s is on the suppression list (%s); no recipient is left to send to", r.Address, r.Reason))
	}
	return v
}

// dropSuppressed removes suppressed recipients from a prepared submission; when none is
// left it refuses the submission with a *SuppressedError.
func (s *Service) dropSuppressed(ctx context.Context, tenantID string, p *prepared) error {
	hits, err := s.matchSuppressed(ctx, tenantID, []*prepared{p})
	if err != nil {
		return err
	}
	return hits.drop(p)
}

// suppressedHits are the live suppression entries among some submissions' recipients,
// by the recipient as given and by the entry's normalized address.
type suppressedHits struct {
	given map[string]*suppression.Suppression
	norm  map[string]*suppression.Suppression
}

// matchSuppressed looks up the recipients of all of ps in one query.
func (s *Service) matchSuppressed(ctx context.Context, tenantID string, ps []*prepared) (*suppressedHits, error) {
	if s.cfg.Suppressions == nil || len(ps) == 0 {
		return nil, nil
	}
	given, err := s.cfg.Suppressions.Match(ctx, tenantID, recipientsOf(ps))
	if err != nil || len(given) == 0 {
		return nil, err
	}
	h := newHits(len(given))
	for r, sup := range given {
		h.add(r, sup)
	}
	return h, nil
}

// matchPending looks up the recipients of the submissions of a group commit, of whichever
// tenants, in one query, and returns the hits by tenant.
func (s *Service) matchPending(ctx context.Context, pds []*pending) (map[string]*suppressedHits, error) {
	if s.cfg.Suppressions == nil || len(pds) == 0 {
		return nil, nil
	}
	byTenant := map[string][]*prepared{}
	for _, pd := range pds {
		byTenant[pd.tenantID] = append(byTenant[pd.tenantID], pd.p)
	}
	if len(byTenant) == 1 {
		tenantID := pds[0].tenantID
		hits, err := s.matchSuppressed(ctx, tenantID, byTenant[tenantID])
		return map[string]*suppressedHits{tenantID: hits}, err
	}
	var keys []suppression.Key
	for tenantID, ps := range byTenant {
		for _, r := range recipientsOf(ps) {
			keys = append(keys, suppression.Key{TenantID: tenantID, Address: r})
		}
	}
	found, err := s.cfg.Suppressions.MatchKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := map[string]*suppressedHits{}
	for k, sup := range found {
		if out[k.TenantID] == nil {
			out[k.TenantID] = newHits(1)
		}
		out[k.TenantID].add(k.Address, sup)
	}
	return out, nil
}

// recipientsOf lists the recipients of ps, each once.
func recipientsOf(ps []*prepared) []string {
	if len(ps) == 1 {
		return ps[0].recipients
	}
	seen := map[string]bool{}
	var addrs []string
	for _, p := range ps {
		for _, r := range p.recipients {
			if !seen[r] {
				seen[r] = true
				addrs = append(addrs, r)
			}
		}
	}
	return addrs
}

func newHits(n int) *suppressedHits {
	return &suppressedHits{given: make(map[string]*suppression.Suppression, n), norm: make(map[string]*suppression.Suppression, n)}
}

// add records the entry that recipient r (as given) matched.
func (h *suppressedHits) add(r string, sup *suppression.Suppression) {
	h.given[r] = sup
	h.norm[sup.Address] = sup
}

// lookup finds r's entry; an address written differently from the one that matched (case,
// a display name) is found by its normalized form.
func (h *suppressedHits) lookup(r string) (*suppression.Suppression, bool) {
	if sup, ok := h.given[r]; ok {
		return sup, true
	}
	n, err := suppression.Normalize(r)
	if err != nil {
		return nil, false
	}
	sup, ok := h.norm[n]
	return sup, ok
}

// drop removes p's suppressed recipients; when none is left it refuses p with a
// *SuppressedError.
func (h *suppressedHits) drop(p *prepared) error {
	if h == nil {
		return nil
	}
	kept := make([]string, 0, len(p.recipients))
	for _, r := range p.recipients {
		if sup, ok := h.lookup(r); ok {
			p.suppressed = append(p.suppressed, SuppressedRecipient{Address: r, Reason: sup.Reason})
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		return &SuppressedError{Recipients: p.suppressed}
	}
	if len(p.suppressed) > 0 {
		p.recipients = kept
	}
	return nil
}

func streamSuppressed(list []SuppressedRecipient) []event.SuppressedRecipient {
	out := make([]event.SuppressedRecipient, len(list))
	for i, r := range list {
		out[i] = event.SuppressedRecipient{Address: r.Address, Reason: string(r.Reason)}
	}
	return out
}

// recordSuppressed adds a "suppressed" step to the timeline of each message that left
// recipients out, and message.suppressed to the tenant's event stream.
func (s *Service) recordSuppressed(ctx context.Context, tx pgx.Tx, tenantID string, ps []*prepared) error {
	q := s.q.WithTx(tx)
	for _, p := range ps {
		if len(p.suppressed) == 0 {
			continue
		}
		data, _ := json.Marshal(map[string]any{"recipients": p.suppressed})
		if err := q.MessageEventInsert(ctx, dbsqlc.MessageEventInsertParams{MessageID: p.id, TenantID: tenantID, Type: EventSuppressed, Data: data}); err != nil {
			return fmt.Errorf("error inserting message event: %w", err)
		}
		ev := queuedStreamEvent(tenantID, p)
		ev.Data = event.MessageSuppressedData{MessageInfo: ev.Data.(event.MessageQueuedData).MessageInfo, Suppressed: streamSuppressed(p.suppressed)}
		if err := event.Append(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// Timeline event types added by suppression and bounce handling.
const (
	EventSuppressed = "suppressed"
	EventBounced    = "bounced"
	EventComplained = "complained"
)

// goneRecipients lists the recipients an upstream refused as non-existent: each rejected
// RCPT that says so, or the message's only recipient when the reply to DATA does.
func goneRecipients(m dbsqlc.Message, de *delivery.Error) []delivery.RecipientResult {
	var out []delivery.RecipientResult
	for _, r := range de.Recipients {
		if !r.Accepted && r.Reply != nil && delivery.MailboxGone(*r.Reply) {
			out = append(out, r)
		}
	}
	o := de.Outcome
	if de.Stage == delivery.StageData && len(m.Recipients) == 1 && o.SMTPCode != 0 {
		reply := delivery.Reply{Code: o.SMTPCode, EnhancedCode: o.EnhancedCode, Text: o.Text}
		if delivery.MailboxGone(reply) {
			out = append(out, delivery.RecipientResult{Address: m.Recipients[0], Reply: &reply})
		}
	}
	return out
}

// suppressGone adds the recipients an upstream refused as non-existent to the tenant's
// suppression list (an upsert, so a repeated attempt changes nothing).
func (d *Deliverer) suppressGone(ctx context.Context, m dbsqlc.Message, sendErr error) error {
	var de *delivery.Error
	if d.opts.Suppressions == nil || !errors.As(sendErr, &de) {
		return nil
	}
	for _, r := range goneRecipients(m, de) {
		_, err := d.opts.Suppressions.Add(ctx, m.TenantID, suppression.Entry{
			Address: r.Address, Reason: suppression.ReasonHardBounce, SourceMessageID: m.ID, Detail: strings.TrimSpace(r.Reply.String()),
		})
		var ve *validate.Error
		if errors.As(err, &ve) {
			continue // an address the upstream took but we cannot parse: nothing to suppress
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckRecipient refuses a recipient on the tenant's suppression list with a
// *SuppressedError, so the relay can answer at RCPT instead of after the whole message.
func (s *Service) CheckRecipient(ctx context.Context, tenantID, to string) error {
	if s.cfg.Suppressions == nil {
		return nil
	}
	sup, err := s.cfg.Suppressions.Check(ctx, tenantID, to)
	if err != nil || sup == nil {
		return err
	}
	return &SuppressedError{Recipients: []SuppressedRecipient{{Address: sup.Address, Reason: sup.Reason}}}
}
