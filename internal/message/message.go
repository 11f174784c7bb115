// Package message is the product's heart: submission (validation, MIME rendering, sender
// rules, limits, one transaction for the message and its delivery job), the deliver worker
// (DKIM, pooled SMTP, retries), the message log with its event timeline, and retention.
package message

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// Statuses of a message.
const (
	StatusQueued    = "queued"
	StatusSending   = "sending"
	StatusDeferred  = "deferred"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Sources of a message.
const (
	SourceAPI  = "api"
	SourceSMTP = "smtp"
	SourceTest = "test"
)

// QueueDeliveries is the River queue of delivery jobs.
const QueueDeliveries = "deliveries"

// Senders answers the sender-domain rules and holds DKIM keys; internal/sendingdomain
// implements it.
type Senders interface {
	// CheckSender returns a *SenderError when tenantID may not send from domain.
	// requireSPF is set for platform connectors, which need the platform in the domain's SPF.
	CheckSender(ctx context.Context, tenantID, domain string, requireSPF bool) error
	// DKIMSigners returns the keys to sign mail from domain with (one signature each), or
	// store.ErrNotFound.
	DKIMSigners(ctx context.Context, tenantID, domain string) ([]delivery.DKIMOptions, error)
	// VerifiedElsewhere reports whether a tenant other than tenantID holds domain with
	// send rights.
	VerifiedElsewhere(ctx context.Context, tenantID, domain string) (bool, error)
}

// SenderError is a refused sender, with the rule it broke in words.
type SenderError struct {
	Domain  string
	Message string
}

func (e *SenderError) Error() string { return e.Message }

// Inserter is the part of the River client submission needs.
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobCancelTx(ctx context.Context, tx pgx.Tx, jobID int64) (*rivertype.JobRow, error)
}

// Config tunes submission.
type Config struct {
	// MaxMessageBytes caps a rendered message.
	MaxMessageBytes int
	// MaxAttempts bounds delivery attempts (first try included).
	MaxAttempts int
	// Committers is how many group-commit transactions may run at once (0: the default;
	// negative: no grouping, one transaction per submission).
	Committers int
	// Suppressions, when set, leaves suppressed recipients out of submissions.
	Suppressions *suppression.Service
	// GroupSizeFunc, when set, is told the size of each group commit (for metrics).
	GroupSizeFunc func(n int)
	// Tenants, when set, reads the tenant's monthly quota (through its cache); without it
	// each submission reads the tenant row.
	Tenants *tenant.Service
	// Direct, when set, runs the first delivery attempt of grouped submissions in this
	// process right after their commit (direct.go); nil leaves every job to River's fetch.
	Direct *Direct
}

// Service submits and reads messages.
type Service struct {
	db         store.DB
	q          *dbsqlc.Queries
	jobs       Inserter
	connectors *connector.Service
	senders    Senders
	deliverer  *Deliverer
	cfg        Config
	group      *committer
	NowFunc    func() time.Time
}

// NewService returns a Service; deliverer makes test e-mails' single attempts.
func NewService(db store.DB, jobs Inserter, connectors *connector.Service, senders Senders, deliverer *Deliverer, cfg Config) *Service {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 10 << 20
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = len(DefaultRetrySchedule) + 1
	}
	if cfg.Committers == 0 {
		cfg.Committers = DefaultCommitters
	}
	s := &Service{db: db, q: dbsqlc.New(db), jobs: jobs, connectors: connectors, senders: senders, deliverer: deliverer, cfg: cfg, NowFunc: time.Now}
	if cfg.Committers > 0 {
		s.group = newCommitter(s, cfg.Committers)
	}
	return s
}

// Message is a submission as stored.
type Message struct {
	ID           string
	TenantID     string
	ConnectorID  string
	Source       string
	Status       string
	From         Address
	EnvelopeFrom string
	Recipients   []string
	To, Cc       []string
	Subject      string
	MessageID    string
	Tags         []string
	Metadata     map[string]string
	SizeBytes    int
	SendAt       *time.Time
	Attempts     int
	NextAttempt  *time.Time
	LastReply    *Reply
	Reason       string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	CompletedAt  *time.Time
	BodyPurged   bool
	Events       []Event
}

// Reply is an SMTP reply as recorded on messages and events.
type Reply struct {
	Code         int    `json:"code"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	Text         string `json:"text"`
}

// Event is one step of a message's timeline.
type Event struct {
	Type string
	At   time.Time
	Data map[string]any
}

// Accepted is the answer to a submission.
type Accepted struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	MessageID string `json:"message_id"`
	// Suppressed lists the recipients left out because they are on the suppression list.
	Suppressed []SuppressedRecipient `json:"suppressed,omitempty"`
}

// Sentinels of the refusals *ConnectorPausedError and *IdempotencyConflictError, for
// errors.Is.
var (
	ErrConnectorPaused  = errors.New("connector is paused")
	ErrIdempotencyReuse = errors.New("the Idempotency-Key was used with a different request")
)

// prepared is a validated, rendered submission ready to insert.
type prepared struct {
	id         string
	conn       *connector.Connector
	req        *Request
	r          *rendered
	source     string
	envelope   string
	recipients []string
	suppressed []SuppressedRecipient
	// unscreened: its recipients are yet to be looked up on the suppression list. The
	// commit does that for all submissions of its group in one query (screenSuppressed).
	unscreened bool
	// direct is its reserved direct first attempt; nil when River's fetch runs it.
	direct *directJob
}

// prepare validates a request against its connector and the sender rules; its recipients
// are looked up on the suppression list when it is committed.
func (s *Service) prepare(ctx context.Context, tenantID string, req *Request) (*prepared, error) {
	conn, err := s.connectorFor(ctx, tenantID, req.ConnectorID)
	if err != nil {
		return nil, err
	}
	p, err := s.renderChecked(ctx, tenantID, conn, req, nil)
	if err != nil {
		return nil, err
	}
	p.unscreened = s.cfg.Suppressions != nil
	return p, nil
}

// prepareWith is prepare for a known connector, with suppressed recipients left out at once.
func (s *Service) prepareWith(ctx context.Context, tenantID string, conn *connector.Connector, req *Request) (*prepared, error) {
	p, err := s.renderChecked(ctx, tenantID, conn, req, nil)
	if err != nil {
		return nil, err
	}
	if err := s.dropSuppressed(ctx, tenantID, p); err != nil {
		return nil, err
	}
	return p, nil
}

// renderChecked renders a request and applies the sender rule (answers shared through
// memo, when given); suppressions are left to the caller.
func (s *Service) renderChecked(ctx context.Context, tenantID string, conn *connector.Connector, req *Request, memo *senderMemo) (*prepared, error) {
	id := ids.New(ids.Message)
	r, err := render(req, id, s.NowFunc(), s.cfg.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	if err := s.checkSenderMemo(ctx, tenantID, conn, "from.email", r.from.String(), memo); err != nil {
		return nil, err
	}
	return &prepared{id: id, conn: conn, req: req, r: r, source: SourceAPI, envelope: r.from.String(), recipients: r.recipients}, nil
}

func (s *Service) connectorFor(ctx context.Context, tenantID, id string) (*connector.Connector, error) {
	if id == "" {
		c, err := s.connectors.Default(ctx, tenantID)
		if connector.IsNotFound(err) {
			return nil, &ConnectorNotFoundError{}
		}
		return c, err
	}
	c, err := s.connectors.Get(ctx, tenantID, id)
	if connector.IsNotFound(err) {
		return nil, &ConnectorNotFoundError{ID: id}
	}
	return c, err
}

// checkSender applies the connector's rules to a sender address given in field: a platform
// connector sends only from verified domains whose SPF authorises the platform; an smtp
// connector from a verified domain or exactly its own default sender, which the tenant's
// server authenticates — unless that address is at a domain another tenant has verified
// and this one has not.
func (s *Service) checkSender(ctx context.Context, tenantID string, conn *connector.Connector, field, from string) error {
	return s.checkSenderMemo(ctx, tenantID, conn, field, from, nil)
}

// senderMemo keeps the answers of the sender rule's lookups within one batch, so a batch
// looks up each distinct sender domain (and default sender) once, not once per message.
type senderMemo struct {
	domains  map[senderDomainKey]error
	defaults map[string]error
}

type senderDomainKey struct {
	domain     string
	requireSPF bool
}

func newSenderMemo() *senderMemo {
	return &senderMemo{domains: map[senderDomainKey]error{}, defaults: map[string]error{}}
}

func (m *senderMemo) defaultSender(ctx context.Context, s *Service, tenantID, email string) error {
	if m == nil {
		return s.checkDefaultSender(ctx, tenantID, email)
	}
	err, ok := m.defaults[email]
	if !ok {
		err = s.checkDefaultSender(ctx, tenantID, email)
		m.defaults[email] = err
	}
	return err
}

// checkDefaultSender refuses a connector's default sender at a domain another tenant has
// verified (and this one has not) with a *connector.SenderClaimedError; the answer comes
// through the sending-domain service's cache.
func (s *Service) checkDefaultSender(ctx context.Context, tenantID, email string) error {
	a, err := mailaddr.Parse(email)
	if err != nil {
		return nil // the address rule reports it
	}
	claimed, err := s.senders.VerifiedElsewhere(ctx, tenantID, a.Domain)
	if err != nil {
		return fmt.Errorf("error checking the default sender's domain: %w", err)
	}
	if claimed {
		return &connector.SenderClaimedError{Email: a.String(), Domain: a.Domain}
	}
	return nil
}

func (m *senderMemo) domain(ctx context.Context, s *Service, tenantID, domain string, requireSPF bool) error {
	if m == nil {
		return s.senders.CheckSender(ctx, tenantID, domain, requireSPF)
	}
	k := senderDomainKey{domain, requireSPF}
	err, ok := m.domains[k]
	if !ok {
		err = s.senders.CheckSender(ctx, tenantID, domain, requireSPF)
		m.domains[k] = err
	}
	return err
}

// checkSenderMemo is checkSender with the lookups' answers shared through memo (nil: none).
func (s *Service) checkSenderMemo(ctx context.Context, tenantID string, conn *connector.Connector, field, from string, memo *senderMemo) error {
	if conn.Kind == connector.KindSMTP && strings.EqualFold(from, conn.Sender.Email) {
		err := memo.defaultSender(ctx, s, tenantID, conn.Sender.Email)
		var ce *connector.SenderClaimedError
		if errors.As(err, &ce) {
			return &SenderRefusedError{Field: field, Address: from, Reason: ce.Error()}
		}
		return err
	}
	domain := from[strings.LastIndexByte(from, '@')+1:]
	err := memo.domain(ctx, s, tenantID, domain, conn.Kind == connector.KindPlatform)
	var se *SenderError
	if errors.As(err, &se) {
		msg := se.Message
		if conn.Kind == connector.KindSMTP {
			msg += fmt.Sprintf(" (this connector may also send from its default sender %s)", conn.Sender.Email)
		}
		return &SenderRefusedError{Field: field, Address: from, Reason: msg}
	}
	return err
}

// Submit validates and accepts one message: the message, its first event and its delivery
// job are committed in one transaction, and only then is it Accepted. With an
// Idempotency-Key, a repeat of the same request returns the first answer.
func (s *Service) Submit(ctx context.Context, tenantID string, req *Request, idem *Idempotency) (*Accepted, *Quota, error) {
	a := s.group.arrive()
	defer a.leave()
	if idem != nil {
		if raw, err := s.replay(ctx, tenantID, idem); raw != nil || err != nil {
			return decodeAccepted(raw, err)
		}
	}
	p, err := s.prepare(ctx, tenantID, req)
	if err != nil {
		return nil, nil, err
	}
	if p.conn.Status == connector.StatusPaused {
		// Every recipient suppressed is the refusal it would have been before the pause.
		if err := s.dropSuppressed(ctx, tenantID, p); err != nil {
			return nil, nil, err
		}
		return nil, nil, &ConnectorPausedError{ConnectorID: p.conn.ID}
	}
	acc := &Accepted{ID: p.id, Status: StatusQueued, MessageID: "<" + p.r.messageID + ">"}
	return s.commit(ctx, &pending{tenantID: tenantID, p: p, idem: idem, acc: acc, arrival: a})
}

// commit writes one prepared submission, grouped with concurrent ones unless grouping is off.
func (s *Service) commit(ctx context.Context, pd *pending) (*Accepted, *Quota, error) {
	if s.group == nil {
		pd.done = make(chan commitResult, 1)
		if len(s.screenSuppressed(ctx, []*pending{pd})) == 1 {
			pd.answer(s.commitOne(ctx, pd))
		}
		r := <-pd.done
		return r.acc, r.quota, r.err
	}
	return s.group.submit(ctx, pd)
}

func decodeAccepted(raw []byte, err error) (*Accepted, *Quota, error) {
	if err != nil {
		return nil, nil, err
	}
	var acc Accepted
	if err := json.Unmarshal(raw, &acc); err != nil {
		return nil, nil, fmt.Errorf("error decoding stored response: %w", err)
	}
	return &acc, nil, nil
}

// insert writes messages, their "queued" (and "suppressed") events and delivery jobs.
func (s *Service) insert(ctx context.Context, tx pgx.Tx, tenantID string, ps []*prepared) error {
	if err := s.insertMessages(ctx, tx, tenantID, ps); err != nil {
		return err
	}
	return s.recordSuppressed(ctx, tx, tenantID, ps)
}

func (s *Service) insertMessages(ctx context.Context, tx pgx.Tx, tenantID string, ps []*prepared) error {
	q := s.q.WithTx(tx)
	var direct, fetched []*prepared
	for _, p := range ps {
		if p.direct != nil {
			direct = append(direct, p)
		} else {
			fetched = append(fetched, p)
		}
	}
	if len(direct) > 0 {
		if err := s.cfg.Direct.insertJobs(ctx, tx, tenantID, direct, s.cfg.MaxAttempts); err != nil {
			return err
		}
	}
	if len(ps) == 1 {
		p := ps[0]
		row := insertRow(tenantID, p)
		if p.direct != nil {
			row.JobID = &p.direct.jobID
		} else {
			res, err := s.jobs.InsertTx(ctx, tx, DeliverArgs{MessageID: p.id, TenantID: tenantID}, s.insertOpts(p))
			if err != nil {
				return fmt.Errorf("error enqueueing delivery: %w", err)
			}
			row.JobID = &res.Job.ID
		}
		if err := q.MessageInsert(ctx, dbsqlc.MessageInsertParams(row)); err != nil {
			return fmt.Errorf("error inserting message: %w", err)
		}
		return insertQueued(ctx, q, tenantID, ps)
	}
	return s.insertMany(ctx, tx, tenantID, ps, fetched)
}

// insertMany inserts ps, enqueueing the jobs of fetched (those of the others, direct ones,
// are inserted already).
func (s *Service) insertMany(ctx context.Context, tx pgx.Tx, tenantID string, ps, fetched []*prepared) error {
	q := s.q.WithTx(tx)
	jobIDs := make(map[*prepared]int64, len(ps))
	if len(fetched) > 0 {
		params := make([]river.InsertManyParams, len(fetched))
		for i, p := range fetched {
			params[i] = river.InsertManyParams{Args: DeliverArgs{MessageID: p.id, TenantID: tenantID}, InsertOpts: s.insertOpts(p)}
		}
		res, err := s.jobs.InsertManyTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("error enqueueing deliveries: %w", err)
		}
		for i, r := range res {
			jobIDs[fetched[i]] = r.Job.ID
		}
	}
	rows := make([]dbsqlc.MessageInsertManyParams, len(ps))
	for i, p := range ps {
		rows[i] = dbsqlc.MessageInsertManyParams(insertRow(tenantID, p))
		id := jobIDs[p]
		if p.direct != nil {
			id = p.direct.jobID
		}
		rows[i].JobID = &id
	}
	if _, err := q.MessageInsertMany(ctx, rows); err != nil {
		return fmt.Errorf("error inserting messages: %w", err)
	}
	return insertQueued(ctx, q, tenantID, ps)
}

// insertQueued writes new messages' `queued` timeline steps and message.queued stream
// events in one statement.
func insertQueued(ctx context.Context, q *dbsqlc.Queries, tenantID string, ps []*prepared) error {
	var a dbsqlc.MessageQueuedInsertManyParams
	for _, p := range ps {
		t := queuedEvent(tenantID, p)
		a.TimelineMessageIds = append(a.TimelineMessageIds, t.MessageID)
		a.TimelineTenantIds = append(a.TimelineTenantIds, t.TenantID)
		a.TimelineData = append(a.TimelineData, string(t.Data))
		e, err := event.Row(queuedStreamEvent(tenantID, p))
		if err != nil {
			return err
		}
		a.EventIds = append(a.EventIds, e.ID)
		a.EventTenantIds = append(a.EventTenantIds, e.TenantID)
		a.EventTypes = append(a.EventTypes, e.Type)
		a.EventCreatedAts = append(a.EventCreatedAts, e.CreatedAt)
		a.EventMessageIds = append(a.EventMessageIds, p.id)
		a.EventConnectorIds = append(a.EventConnectorIds, p.conn.ID)
		a.EventData = append(a.EventData, string(e.Data))
	}
	if err := q.MessageQueuedInsertMany(ctx, a); err != nil {
		return fmt.Errorf("error recording queued messages: %w", err)
	}
	return nil
}

func (s *Service) insertOpts(p *prepared) *river.InsertOpts {
	opts := &river.InsertOpts{Queue: QueueDeliveries, MaxAttempts: s.cfg.MaxAttempts}
	if p.req != nil && p.req.SendAt != nil {
		opts.ScheduledAt = *p.req.SendAt
	}
	return opts
}

func insertRow(tenantID string, p *prepared) dbsqlc.MessageInsertParams {
	meta, _ := json.Marshal(orEmpty(p.metadata()))
	return dbsqlc.MessageInsertParams{
		ID: p.id, TenantID: tenantID, ConnectorID: p.conn.ID, Source: p.source, Status: StatusQueued,
		FromEmail: p.r.from.String(), FromName: p.r.fromName, EnvelopeFrom: p.envelope,
		Recipients: p.recipients, ToAddrs: orEmptySlice(p.r.to), CcAddrs: orEmptySlice(p.r.cc), Subject: p.r.subject,
		MessageID: "<" + p.r.messageID + ">", Tags: orEmptySlice(p.tags()), Metadata: meta, Mime: p.r.mime,
		SizeBytes: int32(len(p.r.mime)), SendAt: p.sendAt(),
	}
}

func queuedEvent(tenantID string, p *prepared) dbsqlc.MessageEventInsertParams {
	data, _ := json.Marshal(map[string]any{"connector_id": p.conn.ID, "recipients": len(p.recipients), "size_bytes": len(p.r.mime), "source": p.source})
	return dbsqlc.MessageEventInsertParams{MessageID: p.id, TenantID: tenantID, Type: "queued", Data: data}
}

func (p *prepared) metadata() map[string]string {
	if p.req == nil {
		return nil
	}
	return p.req.Metadata
}

func (p *prepared) tags() []string {
	if p.req == nil {
		return nil
	}
	return p.req.Tags
}

func (p *prepared) sendAt() *time.Time {
	if p.req == nil {
		return nil
	}
	return p.req.SendAt
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptySlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
