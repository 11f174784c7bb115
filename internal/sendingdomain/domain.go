// Package sendingdomain manages a tenant's sender domains: the records to publish (ownership
// token, SPF, DKIM key, DMARC), the checks over DNS, the verification state machine with its
// grace period, the periodic re-checks (River workers) and the sender rule messages obey.
package sendingdomain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/sendwerk/sendwerk/internal/cache"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/mailaddr"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// Statuses of a domain. Messages may be sent from verified and at_risk domains only.
const (
	StatusPending  = "pending"
	StatusVerified = "verified"
	StatusAtRisk   = "at_risk"
	StatusRevoked  = "revoked"
)

// Domain is one sender domain of a tenant.
type Domain struct {
	ID       string
	TenantID string
	// Name is the A-label form, e.g. "xn--bcher-kva.example".
	Name   string
	Status string
	// VerificationToken is the hex token of the ownership record.
	VerificationToken string
	// DKIMSelector and DKIMPublicKey (base64 DER, the p= value) are those of the active
	// RSA key; DKIMKeys holds every key with its state.
	DKIMSelector  string
	DKIMPublicKey string
	DKIMKeys      []DKIMKey
	// DKIMEd25519: mail is signed with an Ed25519 key beside the RSA key.
	DKIMEd25519 bool
	// DKIMRotationDays rotates the keys on a schedule; nil rotates only on request.
	DKIMRotationDays *int
	// Results are the latest result of each check, in check order (ownership, spf, dkim,
	// dmarc); empty before the first check.
	Results []dnscheck.CheckResult
	// SPFStatus is the last conclusive SPF result, "pass" or "fail"; "" when SPF never
	// answered conclusively (or is not checked on this platform).
	SPFStatus           string
	VerifiedAt          *time.Time
	FirstFailedAt       *time.Time
	ConsecutiveFailures int
	RevokesAt           *time.Time
	LastCheckedAt       *time.Time
	NextCheckAt         time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time

	lastManualCheckAt *time.Time
}

// Unicode is the domain as people write it (U-labels), for display.
func (d *Domain) Unicode() string {
	u, err := idna.Display.ToUnicode(d.Name)
	if err != nil {
		return d.Name
	}
	return u
}

// CanSend reports whether messages may use the domain as sender.
func (d *Domain) CanSend() bool { return d.Status == StatusVerified || d.Status == StatusAtRisk }

// Result returns the latest result of one check, or nil when it has not run.
func (d *Domain) Result(check string) *dnscheck.CheckResult {
	for i := range d.Results {
		if d.Results[i].Check == check {
			return &d.Results[i]
		}
	}
	return nil
}

// Config is the platform's domain policy and check cadence. Zero fields take defaults.
type Config struct {
	// CacheTTL is how long the sender rule reuses a domain's row and the "verified by
	// another account" answer; 0 reads them for every submission. A change through this
	// Service (a check's verdict, a new or deleted domain) empties the cache at once; a
	// change by another process is seen within CacheTTL.
	CacheTTL time.Duration
	// Selector is the DKIM selector of new keys.
	Selector string
	// VerificationPrefix starts the ownership TXT record: "<prefix>=<token>".
	VerificationPrefix string
	// SPFInclude is the platform's SPF include; SPFNetworks its sending addresses. With
	// neither, SPF is not checked.
	SPFInclude  string
	SPFNetworks []netip.Prefix
	// GracePeriod and GraceChecks: a verified domain whose records fail is revoked only
	// when both have passed — the time since the first failure and that many consecutive
	// failed checks.
	GracePeriod time.Duration
	GraceChecks int
	// IntervalPending is the cadence of pending domains for their first PendingFor;
	// IntervalVerified the cadence of every other domain.
	IntervalPending  time.Duration
	PendingFor       time.Duration
	IntervalVerified time.Duration
	// ManualCheckInterval is the least time between two manual checks of one domain.
	ManualCheckInterval time.Duration
	// KeyBits is the RSA DKIM key size.
	KeyBits int
	// CheckTimeout bounds one check of a domain (all four checks run at once).
	CheckTimeout time.Duration
	// SchedulePeriod is how often the leader looks for due domains; MaxJitter spreads the
	// checks it enqueues over that long (negative: no jitter, the checks are available at
	// once); ScheduleBatch caps one claim.
	SchedulePeriod time.Duration
	MaxJitter      time.Duration
	ScheduleBatch  int
	// CheckLease pushes a claimed domain's next_check_at forward until its check job sets
	// the real time; a lost job is re-enqueued after it.
	CheckLease time.Duration
	// CheckRetention is how long check history is kept.
	CheckRetention time.Duration
	// KeyOverlap is how long a replaced DKIM key stays published (retiring) after its
	// successor starts signing: mail signed with it may still be in queues and inboxes
	// that verify late.
	KeyOverlap time.Duration
	// RotationNotice is how long before a scheduled rotation is due the new key is
	// created (and the tenant told), so its record can be published in time.
	RotationNotice time.Duration
}

// Defaults for Config.
const (
	DefaultSelector            = "sw1"
	DefaultVerificationPrefix  = "sendwerk-verification"
	DefaultGracePeriod         = 72 * time.Hour
	DefaultGraceChecks         = 3
	DefaultIntervalPending     = 5 * time.Minute
	DefaultPendingFor          = 24 * time.Hour
	DefaultIntervalVerified    = time.Hour
	DefaultManualCheckInterval = 10 * time.Second
	DefaultKeyBits             = 2048
	DefaultCheckTimeout        = 30 * time.Second
	DefaultSchedulePeriod      = time.Minute
	DefaultScheduleBatch       = 500
	DefaultCheckLease          = 15 * time.Minute
	DefaultCheckRetention      = 30 * 24 * time.Hour
	DefaultKeyOverlap          = 7 * 24 * time.Hour
	DefaultRotationNotice      = 14 * 24 * time.Hour
	// RecordTTL is the TTL suggested for published records.
	RecordTTL = 3600
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Selector == "" {
		c.Selector = DefaultSelector
	}
	if c.VerificationPrefix == "" {
		c.VerificationPrefix = DefaultVerificationPrefix
	}
	if c.GraceChecks <= 0 {
		c.GraceChecks = DefaultGraceChecks
	}
	if c.KeyBits <= 0 {
		c.KeyBits = DefaultKeyBits
	}
	if c.ScheduleBatch <= 0 {
		c.ScheduleBatch = DefaultScheduleBatch
	}
	def(&c.GracePeriod, DefaultGracePeriod)
	def(&c.IntervalPending, DefaultIntervalPending)
	def(&c.PendingFor, DefaultPendingFor)
	def(&c.IntervalVerified, DefaultIntervalVerified)
	def(&c.ManualCheckInterval, DefaultManualCheckInterval)
	def(&c.CheckTimeout, DefaultCheckTimeout)
	def(&c.SchedulePeriod, DefaultSchedulePeriod)
	if c.MaxJitter == 0 {
		c.MaxJitter = c.SchedulePeriod
	}
	def(&c.CheckLease, DefaultCheckLease)
	def(&c.CheckRetention, DefaultCheckRetention)
	def(&c.KeyOverlap, DefaultKeyOverlap)
	def(&c.RotationNotice, DefaultRotationNotice)
	c.SPFInclude = strings.TrimSuffix(c.SPFInclude, ".")
	return c
}

// SPFChecked reports whether the platform has anything for SPF to authorise.
func (c Config) SPFChecked() bool { return c.SPFInclude != "" || len(c.SPFNetworks) > 0 }

// Service stores domains, checks them and decides their status.
type Service struct {
	db      store.DB
	q       *dbsqlc.Queries
	box     *secret.Box
	checker *dnscheck.Checker
	// lookuper is the live DNS under a preview's intended records.
	lookuper dnscheck.Lookuper
	cfg      Config
	// inserter enqueues check jobs in callers' transactions; it never works jobs.
	inserter *river.Client[pgx.Tx]
	metrics  *metrics
	// NowFunc is the clock of the state machine (grace periods, cadence); tests move it.
	NowFunc func() time.Time

	// byName and claims cache what the sender rule reads on every submission (nil
	// without Config.CacheTTL); every change to a domain through this Service empties both.
	byName *cache.TTL[nameKey, dbsqlc.SendingDomain]
	claims *cache.TTL[nameKey, bool]
}

// nameKey is a domain name (ASCII) as seen from a tenant.
type nameKey struct{ tenantID, domain string }

// NewService returns a Service that checks DNS through lookuper (a *dnscheck.Resolver).
func NewService(db store.DB, box *secret.Box, lookuper dnscheck.Lookuper, cfg *Config) (*Service, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	inserter, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	if err != nil {
		return nil, fmt.Errorf("error creating job inserter: %w", err)
	}
	s := &Service{db: db, q: dbsqlc.New(db), box: box, cfg: c.withDefaults(), inserter: inserter, metrics: newMetrics(), NowFunc: time.Now}
	s.checker, s.lookuper = dnscheck.NewChecker(lookuper), lookuper
	s.checker.NowFunc = s.now
	if c.CacheTTL > 0 {
		s.byName = cache.New[nameKey, dbsqlc.SendingDomain](c.CacheTTL, 0)
		s.claims = cache.New[nameKey, bool](c.CacheTTL, 0)
		s.byName.SetClock(func() time.Time { return s.NowFunc() })
		s.claims.SetClock(func() time.Time { return s.NowFunc() })
	}
	return s, nil
}

// ForgetDomains empties the sender-rule caches (a tenant was deleted, with its domains).
func (s *Service) ForgetDomains() { s.forgetDomains() }

// forgetDomains empties the caches after a change to any domain: a status change of one
// tenant's domain changes what every other tenant's "verified elsewhere" answer is, and
// changes are rare next to submissions. It runs after the change committed.
func (s *Service) forgetDomains() {
	s.byName.Purge()
	s.claims.Purge()
}

// cachedRowByName is rowByName through the cache, for the sender rule.
func (s *Service) cachedRowByName(ctx context.Context, tenantID, name string) (dbsqlc.SendingDomain, error) {
	return s.byName.Get(nameKey{tenantID, name}, func() (dbsqlc.SendingDomain, error) {
		return s.rowByName(ctx, tenantID, name) // "not found" is an error: not cached
	})
}

// VerifiedElsewhere reports whether a tenant other than tenantID holds domain with send
// rights (verified, or in its grace period), through the cache.
func (s *Service) VerifiedElsewhere(ctx context.Context, tenantID, domain string) (bool, error) {
	name, err := mailaddr.Domain(domain)
	if err != nil {
		return false, nil
	}
	return s.claims.Get(nameKey{tenantID, name}, func() (bool, error) {
		claimed, err := s.q.SendingDomainVerifiedElsewhere(ctx, dbsqlc.SendingDomainVerifiedElsewhereParams{Domain: name, TenantID: tenantID})
		if err != nil {
			return false, fmt.Errorf("error checking whether another account verified %s: %w", name, err)
		}
		return claimed != nil && *claimed, nil
	})
}

func (s *Service) now() time.Time { return s.NowFunc().UTC().Truncate(time.Microsecond) }

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// DuplicateError is a domain the tenant has already added.
type DuplicateError struct {
	Domain string
	ID     string
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("domain %s is already added as %s", e.Domain, e.ID)
}

// ParseDomain validates a sender domain and returns its lower-case A-label form, or a
// message saying what is wrong, phrased for a field error.
func ParseDomain(in string) (string, error) {
	in = strings.TrimSuffix(strings.TrimSpace(in), ".")
	switch {
	case in == "":
		return "", errors.New("is required")
	case strings.Contains(in, "@"):
		return "", errors.New("must be a domain name without a local part, e.g. example.com rather than noreply@example.com")
	case strings.Contains(in, "://") || strings.ContainsAny(in, "/ :"):
		return "", errors.New("must be a bare domain name like example.com, without scheme, port or path")
	}
	if _, err := netip.ParseAddr(in); err == nil {
		return "", errors.New("must be a domain name, not an IP address")
	}
	name, err := mailaddr.Domain(in)
	if err != nil || strings.Contains(name, "_") {
		return "", errors.New("must be a valid domain name like example.com")
	}
	if ps, _ := publicsuffix.PublicSuffix(name); ps == name {
		return "", fmt.Errorf("%s is a public suffix, which nobody owns; add a domain registered under it, like example.%s", name, name)
	}
	return name, nil
}

// Get returns one of tenantID's domains, or store.ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Domain, error) {
	if !ids.Valid(ids.Domain, id) {
		return nil, store.ErrNotFound
	}
	row, err := s.q.SendingDomainGet(ctx, dbsqlc.SendingDomainGetParams{TenantID: tenantID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error getting domain: %w", store.MapError(err))
	}
	return s.withKeys(ctx, row)
}

// withKeysTx is withKeys inside a transaction.
func (s *Service) withKeysTx(ctx context.Context, q *dbsqlc.Queries, row dbsqlc.SendingDomain) (*Domain, error) {
	d, err := fromRow(row)
	if err != nil {
		return nil, err
	}
	return d, s.loadKeys(ctx, q, d)
}

// withKeys maps a row and loads the domain's DKIM keys.
func (s *Service) withKeys(ctx context.Context, row dbsqlc.SendingDomain) (*Domain, error) {
	d, err := fromRow(row)
	if err != nil {
		return nil, err
	}
	return d, s.loadKeys(ctx, s.q, d)
}

// GetByName returns tenantID's domain called name (any spelling), or store.ErrNotFound.
func (s *Service) GetByName(ctx context.Context, tenantID, name string) (*Domain, error) {
	row, err := s.rowByName(ctx, tenantID, name)
	if err != nil {
		return nil, err
	}
	return s.withKeys(ctx, row)
}

// rowByName reads the domain without its keys: the sender rule, on every submission,
// needs only its status.
func (s *Service) rowByName(ctx context.Context, tenantID, name string) (dbsqlc.SendingDomain, error) {
	ascii, err := mailaddr.Domain(name)
	if err != nil {
		return dbsqlc.SendingDomain{}, store.ErrNotFound
	}
	row, err := s.q.SendingDomainGetByName(ctx, dbsqlc.SendingDomainGetByNameParams{TenantID: tenantID, Domain: ascii})
	if err != nil {
		return row, fmt.Errorf("error getting domain: %w", store.MapError(err))
	}
	return row, nil
}

// List returns up to limit domains after afterID, oldest first.
func (s *Service) List(ctx context.Context, tenantID, afterID string, limit int) ([]*Domain, error) {
	rows, err := s.q.SendingDomainList(ctx, dbsqlc.SendingDomainListParams{TenantID: tenantID, AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing domains: %w", err)
	}
	out, err := fromRows(rows)
	if err != nil || len(out) == 0 {
		return out, err
	}
	domainIDs := make([]string, len(out))
	for i, d := range out {
		domainIDs[i] = d.ID
	}
	keys, err := s.q.DKIMKeyListByDomains(ctx, dbsqlc.DKIMKeyListByDomainsParams{TenantID: tenantID, DomainIds: domainIDs})
	if err != nil {
		return nil, fmt.Errorf("error listing dkim keys: %w", err)
	}
	for _, d := range out {
		var mine []dbsqlc.SendingDomainDkimKey
		for _, k := range keys {
			if k.DomainID == d.ID {
				mine = append(mine, k)
			}
		}
		d.setKeys(mine)
	}
	return out, nil
}

func fromRows(rows []dbsqlc.SendingDomain) ([]*Domain, error) {
	out := make([]*Domain, 0, len(rows))
	for _, r := range rows {
		d, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// NewDomain is a domain to add and how it signs.
type NewDomain struct {
	Name string
	// Ed25519 signs with an Ed25519 key beside the RSA key (two selectors, two records).
	Ed25519 bool
	// RotationDays rotates the keys on a schedule (30 to 3650 days); nil: only on request.
	RotationDays *int
}

// Create adds a domain with a fresh ownership token and DKIM key, and enqueues its first
// check in the same transaction, so the records page shows real status within seconds.
func (s *Service) Create(ctx context.Context, tenantID, name string) (*Domain, error) {
	return s.CreateDomain(ctx, tenantID, NewDomain{Name: name})
}

// CreateDomain is Create with the signing options.
func (s *Service) CreateDomain(ctx context.Context, tenantID string, nd NewDomain) (*Domain, error) {
	ascii, err := ParseDomain(nd.Name)
	if err != nil {
		return nil, validate.Field("domain", err.Error())
	}
	if nd.RotationDays != nil && (*nd.RotationDays < 30 || *nd.RotationDays > 3650) {
		return nil, validate.Field("dkim_rotation_days", "must be from 30 to 3650 days, or null for no scheduled rotation")
	}
	if existing, err := s.rowByName(ctx, tenantID, ascii); err == nil {
		return nil, &DuplicateError{Domain: ascii, ID: existing.ID} // before spending a key
	}
	algs := []string{AlgorithmRSA}
	if nd.Ed25519 {
		algs = append(algs, AlgorithmEd25519)
	}
	material := make([]keyMaterial, len(algs))
	for i, alg := range algs {
		if material[i], err = generateKey(alg, s.cfg.KeyBits); err != nil {
			return nil, err
		}
	}
	id, now := ids.New(ids.Domain), s.now()
	params := dbsqlc.SendingDomainInsertParams{
		ID: id, TenantID: tenantID, Domain: ascii, VerificationToken: randomHex(16), DkimEd25519: nd.Ed25519,
		NextCheckAt: now.Add(s.cfg.IntervalPending), CreatedAt: now,
	}
	if nd.RotationDays != nil {
		n := int32(*nd.RotationDays)
		params.DkimRotationDays = &n
	}
	var out *Domain
	defer s.forgetDomains()
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.SendingDomainInsert(ctx, params)
		if err != nil {
			return fmt.Errorf("error inserting domain: %w", store.MapError(err))
		}
		if out, err = fromRow(row); err != nil {
			return err
		}
		for _, m := range material {
			if _, err := s.insertKey(ctx, q, out, m, s.cfg.selectorFor(1, m.algorithm), KeyActive, now); err != nil {
				return err
			}
		}
		if err := s.loadKeys(ctx, q, out); err != nil {
			return err
		}
		if err := insertEvent(ctx, q, out, "created", "", StatusPending, "", "The domain was added; publish its records and check.", nil, now); err != nil {
			return err
		}
		if _, err := s.inserter.InsertTx(ctx, tx, CheckArgs{TenantID: tenantID, DomainID: id}, nil); err != nil {
			return fmt.Errorf("error enqueuing first domain check: %w", err)
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		if existing, gerr := s.rowByName(ctx, tenantID, ascii); gerr == nil {
			return nil, &DuplicateError{Domain: ascii, ID: existing.ID}
		}
		return nil, &DuplicateError{Domain: ascii}
	}
	return out, err
}

// Delete removes a domain, its key and its history. Messages can no longer use it.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	if !ids.Valid(ids.Domain, id) {
		return store.ErrNotFound
	}
	n, err := s.q.SendingDomainDelete(ctx, dbsqlc.SendingDomainDeleteParams{TenantID: tenantID, ID: id})
	s.forgetDomains()
	if err != nil {
		return fmt.Errorf("error deleting domain: %w", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DKIMKeyContext binds a sealed DKIM private key to its row of sending_domain_dkim_keys
// (secret.Box context). It keeps the form of the time each domain had one key, sealed as
// "domain:dom_<uuid>:dkim_key": migration 00009 gave each domain's key the domain's UUID
// (dkk_<uuid>), so those ciphertexts open unchanged, and newer keys are bound to their own
// row's UUID.
func DKIMKeyContext(keyID string) string {
	return "domain:" + ids.Domain + "_" + strings.TrimPrefix(keyID, ids.DKIMKey+"_") + ":dkim_key"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fromRow(r dbsqlc.SendingDomain) (*Domain, error) {
	d := &Domain{
		ID: r.ID, TenantID: r.TenantID, Name: r.Domain, Status: r.Status, VerificationToken: r.VerificationToken,
		DKIMEd25519: r.DkimEd25519, VerifiedAt: r.VerifiedAt,
		FirstFailedAt: r.FirstFailedAt, ConsecutiveFailures: int(r.ConsecutiveFailures), RevokesAt: r.RevokesAt,
		LastCheckedAt: r.LastCheckedAt, NextCheckAt: r.NextCheckAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		lastManualCheckAt: r.LastManualCheckAt, Results: []dnscheck.CheckResult{},
	}
	if r.DkimRotationDays != nil {
		n := int(*r.DkimRotationDays)
		d.DKIMRotationDays = &n
	}
	if r.SpfStatus != nil {
		d.SPFStatus = *r.SpfStatus
	}
	d.NextCheckAt, d.CreatedAt, d.UpdatedAt = d.NextCheckAt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	for _, t := range []**time.Time{&d.VerifiedAt, &d.FirstFailedAt, &d.RevokesAt, &d.LastCheckedAt, &d.lastManualCheckAt} {
		*t = utc(*t)
	}
	if len(r.LastResults) > 0 {
		if err := json.Unmarshal(r.LastResults, &d.Results); err != nil {
			return nil, fmt.Errorf("error decoding domain check results: %w", err)
		}
	}
	return d, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// IsNotFound reports whether err means "no such domain for this tenant".
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
