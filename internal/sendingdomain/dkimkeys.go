package sendingdomain

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// States of a DKIM key. Mail is signed with active keys only; a pending key becomes active
// once its record verifies, and the key it replaces is retiring until its RetireAfter.
const (
	KeyPending  = "pending"
	KeyActive   = "active"
	KeyRetiring = "retiring"
)

// Algorithms of DKIM keys.
const (
	AlgorithmRSA     = dnscheck.DKIMKeyRSA
	AlgorithmEd25519 = dnscheck.DKIMKeyEd25519
)

// DKIMKey is one DKIM key of a domain; the private key stays sealed in the database.
type DKIMKey struct {
	ID        string
	Selector  string
	Algorithm string
	// PublicKey is the p= value.
	PublicKey string
	State     string
	CreatedAt time.Time
	// ActivatedAt is when it started signing; RetireAfter, for a retiring key, when its
	// record may be removed (it is then deleted).
	ActivatedAt *time.Time
	RetireAfter *time.Time

	sealedKeyID string
	sealed      []byte
}

// Record is the TXT value publishing the key.
func (k DKIMKey) Record() string { return "v=DKIM1; k=" + k.Algorithm + "; p=" + k.PublicKey }

func (k DKIMKey) spec() dnscheck.DKIMKey {
	return dnscheck.DKIMKey{Selector: k.Selector, Algorithm: k.Algorithm, PublicKey: k.PublicKey}
}

func keyFromRow(r dbsqlc.SendingDomainDkimKey) DKIMKey {
	return DKIMKey{
		ID: r.ID, Selector: r.Selector, Algorithm: r.Algorithm, PublicKey: r.PublicKey, State: r.State,
		CreatedAt: r.CreatedAt.UTC(), ActivatedAt: utc(r.ActivatedAt), RetireAfter: utc(r.RetireAfter),
		sealedKeyID: r.PrivateKeyID, sealed: r.PrivateKey,
	}
}

// keyMaterial is a freshly generated key pair, generated before a transaction opens.
type keyMaterial struct {
	algorithm string
	public    string
	pkcs8     []byte
}

func generateKey(algorithm string, bits int) (keyMaterial, error) {
	var priv crypto.Signer
	var pub []byte
	switch algorithm {
	case AlgorithmEd25519:
		edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return keyMaterial{}, fmt.Errorf("error generating ed25519 dkim key: %w", err)
		}
		priv, pub = edPriv, edPub // RFC 8463 4.2: p= is the raw 32-byte key
	default:
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return keyMaterial{}, fmt.Errorf("error generating rsa dkim key: %w", err)
		}
		if pub, err = x509.MarshalPKIXPublicKey(&key.PublicKey); err != nil {
			return keyMaterial{}, fmt.Errorf("error encoding dkim public key: %w", err)
		}
		priv = key
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyMaterial{}, fmt.Errorf("error encoding dkim private key: %w", err)
	}
	return keyMaterial{algorithm: algorithm, public: base64.StdEncoding.EncodeToString(pub), pkcs8: der}, nil
}

// selectorFor names the keys of a selector generation: the configured selector for the
// first, then its letters and the generation number ("sw1", "sw2", …), with "ed"
// appended for Ed25519 keys ("sw1ed"). The generation only grows, so no selector of a
// domain is used twice.
func (c Config) selectorFor(generation int, algorithm string) string {
	sel := c.Selector
	if generation > 1 {
		sel = strings.TrimRight(c.Selector, "0123456789") + strconv.Itoa(generation)
	}
	if algorithm == AlgorithmEd25519 {
		sel += "ed"
	}
	return sel
}

// nextGeneration numbers the next selectors of d, skipping any whose selector one of d's
// keys already has (possible when the configured selector ends in other digits).
func (s *Service) nextGeneration(ctx context.Context, q *dbsqlc.Queries, d *Domain, algorithms ...string) (int, error) {
	taken := map[string]bool{}
	for _, k := range d.DKIMKeys {
		taken[k.Selector] = true
	}
	for range 20 {
		gen, err := q.SendingDomainNextDKIMGeneration(ctx, dbsqlc.SendingDomainNextDKIMGenerationParams{TenantID: d.TenantID, ID: d.ID})
		if err != nil {
			return 0, fmt.Errorf("error numbering dkim selector: %w", store.MapError(err))
		}
		free := true
		for _, alg := range algorithms {
			free = free && !taken[s.cfg.selectorFor(int(gen), alg)]
		}
		if free {
			return int(gen), nil
		}
	}
	return 0, errors.New("error numbering dkim selector: no free selector")
}

// insertKey seals m and stores it as a key of d.
func (s *Service) insertKey(ctx context.Context, q *dbsqlc.Queries, d *Domain, m keyMaterial, selector, state string, now time.Time) (DKIMKey, error) {
	id := ids.New(ids.DKIMKey)
	keyID, sealed := s.box.Seal(m.pkcs8, DKIMKeyContext(id))
	p := dbsqlc.DKIMKeyInsertParams{
		ID: id, TenantID: d.TenantID, DomainID: d.ID, Selector: selector, Algorithm: m.algorithm,
		PublicKey: m.public, PrivateKeyID: keyID, PrivateKey: sealed, State: state, CreatedAt: now,
	}
	if state == KeyActive {
		p.ActivatedAt = &now
	}
	row, err := q.DKIMKeyInsert(ctx, p)
	if err != nil {
		return DKIMKey{}, fmt.Errorf("error inserting dkim key: %w", store.MapError(err))
	}
	return keyFromRow(row), nil
}

// loadKeys fills in d's keys.
func (s *Service) loadKeys(ctx context.Context, q *dbsqlc.Queries, d *Domain) error {
	rows, err := q.DKIMKeyListByDomain(ctx, dbsqlc.DKIMKeyListByDomainParams{TenantID: d.TenantID, DomainID: d.ID})
	if err != nil {
		return fmt.Errorf("error listing dkim keys: %w", err)
	}
	d.setKeys(rows)
	return nil
}

func (d *Domain) setKeys(rows []dbsqlc.SendingDomainDkimKey) {
	d.DKIMKeys = make([]DKIMKey, 0, len(rows))
	for _, r := range rows {
		d.DKIMKeys = append(d.DKIMKeys, keyFromRow(r))
	}
	// Active before pending before retiring, RSA first: the order records are listed in.
	rank := map[string]int{KeyActive: 0, KeyPending: 1, KeyRetiring: 2}
	slices.SortStableFunc(d.DKIMKeys, func(a, b DKIMKey) int {
		if rank[a.State] != rank[b.State] {
			return rank[a.State] - rank[b.State]
		}
		return strings.Compare(b.Algorithm, a.Algorithm) // "rsa" before "ed25519"
	})
	d.DKIMSelector, d.DKIMPublicKey = "", ""
	if k := d.key(KeyActive, AlgorithmRSA); k != nil {
		d.DKIMSelector, d.DKIMPublicKey = k.Selector, k.PublicKey
	}
}

// key returns d's key in state of algorithm, or nil.
func (d *Domain) key(state, algorithm string) *DKIMKey {
	for i := range d.DKIMKeys {
		if d.DKIMKeys[i].State == state && d.DKIMKeys[i].Algorithm == algorithm {
			return &d.DKIMKeys[i]
		}
	}
	return nil
}

// checkedKeys are the keys whose records a check verifies: active and pending ones.
func (d *Domain) checkedKeys() []DKIMKey {
	var out []DKIMKey
	for _, k := range d.DKIMKeys {
		if k.State != KeyRetiring {
			out = append(out, k)
		}
	}
	return out
}

// algorithms lists the algorithms d signs with.
func (d *Domain) algorithms() []string {
	if d.DKIMEd25519 {
		return []string{AlgorithmRSA, AlgorithmEd25519}
	}
	return []string{AlgorithmRSA}
}

// RotationPendingError refuses a rotation while the previous one still waits for its record.
type RotationPendingError struct {
	Selector string
}

func (e *RotationPendingError) Error() string {
	return fmt.Sprintf("a key rotation is already pending: publish the record at %s._domainkey and check the domain; it becomes the signing key once its record verifies", e.Selector)
}

// Rotate creates the next key of algorithm ("" rotates every algorithm the domain signs
// with) under a new selector, as pending: it is listed with the records, checked with the
// domain, and signs once its record verifies; the key it replaces then stays published as
// retiring for the overlap (Config.KeyOverlap). Nothing is signed with the new key before.
func (s *Service) Rotate(ctx context.Context, tenantID, id, algorithm string) (*Domain, error) {
	d, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	algs := d.algorithms()
	switch {
	case algorithm == "":
	case algorithm == AlgorithmEd25519 && !d.DKIMEd25519:
		return nil, validate.Field("algorithm", "ed25519 signing is not enabled for this domain; enable it with dkim_ed25519 first")
	case slices.Contains(algs, algorithm):
		algs = []string{algorithm}
	default:
		return nil, validate.Field("algorithm", "must be rsa or ed25519")
	}
	for _, alg := range algs {
		if k := d.key(KeyPending, alg); k != nil {
			return nil, &RotationPendingError{Selector: k.Selector}
		}
	}
	material := make([]keyMaterial, len(algs))
	for i, alg := range algs {
		if material[i], err = generateKey(alg, s.cfg.KeyBits); err != nil {
			return nil, err
		}
	}
	err = store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		gen, err := s.nextGeneration(ctx, q, d, algs...)
		if err != nil {
			return err
		}
		for _, m := range material {
			if _, err := s.insertKey(ctx, q, d, m, s.cfg.selectorFor(gen, m.algorithm), KeyPending, s.now()); err != nil {
				if errors.Is(err, store.ErrConflict) { // a concurrent rotation won
					return &RotationPendingError{Selector: s.cfg.selectorFor(gen, m.algorithm)}
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, tenantID, id)
}

// DKIMPolicy is how a domain signs: with an Ed25519 key beside the RSA key, and whether
// its keys rotate on a schedule. Nil fields are left as they are.
type DKIMPolicy struct {
	Ed25519 *bool
	// RotationDays rotates the keys every so many days (30 to 3650); a pointer to nil
	// turns scheduled rotation off.
	RotationDays **int
}

// UpdateDKIMPolicy changes d's signing policy. Turning Ed25519 on adds an Ed25519 key
// (pending on a domain that already sends, so nothing is signed before its record
// verifies); turning it off retires the Ed25519 keys.
func (s *Service) UpdateDKIMPolicy(ctx context.Context, tenantID, id string, p DKIMPolicy) (*Domain, error) {
	if p.RotationDays != nil && *p.RotationDays != nil && (**p.RotationDays < 30 || **p.RotationDays > 3650) {
		return nil, validate.Field("dkim_rotation_days", "must be from 30 to 3650 days, or null for no scheduled rotation")
	}
	if _, err := s.Get(ctx, tenantID, id); err != nil {
		return nil, err
	}
	var material *keyMaterial
	if p.Ed25519 != nil && *p.Ed25519 { // generated even if already on: the row is read again under lock
		m, err := generateKey(AlgorithmEd25519, 0)
		if err != nil {
			return nil, err
		}
		material = &m
	}
	defer s.forgetDomains()
	err := store.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.SendingDomainGetForUpdate(ctx, dbsqlc.SendingDomainGetForUpdateParams{TenantID: tenantID, ID: id})
		if err != nil {
			return fmt.Errorf("error locking domain: %w", store.MapError(err))
		}
		cur, err := fromRow(row)
		if err != nil {
			return err
		}
		if err := s.loadKeys(ctx, q, cur); err != nil {
			return err
		}
		params := dbsqlc.SendingDomainUpdateDKIMPolicyParams{TenantID: tenantID, ID: id, DkimEd25519: cur.DKIMEd25519, DkimRotationDays: row.DkimRotationDays}
		if p.RotationDays != nil {
			params.DkimRotationDays = nil
			if *p.RotationDays != nil {
				n := int32(**p.RotationDays)
				params.DkimRotationDays = &n
			}
		}
		if p.Ed25519 != nil {
			params.DkimEd25519 = *p.Ed25519
			if err := s.switchEd25519(ctx, q, cur, *p.Ed25519, material); err != nil {
				return err
			}
		}
		if _, err := q.SendingDomainUpdateDKIMPolicy(ctx, params); err != nil {
			return fmt.Errorf("error updating dkim policy: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, tenantID, id)
}

// switchEd25519 adds the Ed25519 key when it is turned on, or retires the Ed25519 keys.
func (s *Service) switchEd25519(ctx context.Context, q *dbsqlc.Queries, d *Domain, on bool, m *keyMaterial) error {
	now := s.now()
	if on {
		if d.DKIMEd25519 || m == nil {
			return nil
		}
		gen, err := s.nextGeneration(ctx, q, d, AlgorithmEd25519)
		if err != nil {
			return err
		}
		state := KeyPending
		if d.Status == StatusPending {
			state = KeyActive // not sending yet: the key is verified with the domain
		}
		_, err = s.insertKey(ctx, q, d, *m, s.cfg.selectorFor(gen, AlgorithmEd25519), state, now)
		return err
	}
	retire := now.Add(s.cfg.KeyOverlap)
	for _, k := range d.DKIMKeys {
		if k.Algorithm != AlgorithmEd25519 || k.State == KeyRetiring {
			continue
		}
		if err := q.DKIMKeySetState(ctx, dbsqlc.DKIMKeySetStateParams{TenantID: d.TenantID, ID: k.ID, State: KeyRetiring, ActivatedAt: k.ActivatedAt, RetireAfter: &retire}); err != nil {
			return fmt.Errorf("error retiring dkim key: %w", err)
		}
	}
	return nil
}

// keyEvent is a change to a domain's keys, for its event log.
type keyEvent struct {
	typ, code, reason string
}

// advanceKeys moves d's keys after a check (in the check's transaction, with d locked):
// a pending key whose record passed becomes active and the active key of its algorithm
// starts retiring; retiring keys past their RetireAfter are deleted; with a rotation
// policy, a key whose rotation is due within RotationNotice gets its successor as pending.
func (s *Service) advanceKeys(ctx context.Context, q *dbsqlc.Queries, d *Domain, results []dnscheck.CheckResult, material map[string]keyMaterial, now time.Time) ([]keyEvent, error) {
	var events []keyEvent
	for _, k := range d.DKIMKeys {
		switch {
		case k.State == KeyPending && dkimPassed(results, k.Selector):
			ev, err := s.activate(ctx, q, d, k, now)
			if err != nil {
				return nil, err
			}
			events = append(events, ev)
		case k.State == KeyRetiring && k.RetireAfter != nil && !now.Before(*k.RetireAfter):
			if err := q.DKIMKeyDelete(ctx, dbsqlc.DKIMKeyDeleteParams{TenantID: d.TenantID, ID: k.ID}); err != nil {
				return nil, fmt.Errorf("error deleting retired dkim key: %w", err)
			}
			events = append(events, keyEvent{"dkim_key_retired", "dkim.key_retired", fmt.Sprintf(
				"The DKIM key %s (%s) is retired; its record at %s._domainkey.%s may be removed.", k.Selector, k.Algorithm, k.Selector, d.Name)})
		}
	}
	due, err := s.scheduleRotation(ctx, q, d, material, now)
	return append(events, due...), err
}

// activate makes k the signing key of its algorithm and retires the one it replaces.
func (s *Service) activate(ctx context.Context, q *dbsqlc.Queries, d *Domain, k DKIMKey, now time.Time) (keyEvent, error) {
	reason := fmt.Sprintf("The DKIM record at %s._domainkey.%s verifies: mail is now signed with key %s (%s).", k.Selector, d.Name, k.Selector, k.Algorithm)
	if old := d.key(KeyActive, k.Algorithm); old != nil {
		retire := now.Add(s.cfg.KeyOverlap)
		if err := q.DKIMKeySetState(ctx, dbsqlc.DKIMKeySetStateParams{TenantID: d.TenantID, ID: old.ID, State: KeyRetiring, ActivatedAt: old.ActivatedAt, RetireAfter: &retire}); err != nil {
			return keyEvent{}, fmt.Errorf("error retiring dkim key: %w", err)
		}
		reason += fmt.Sprintf(" Keep the record of the previous key %s published until %s: mail signed with it may still be in transit; it may be removed after that.", old.Selector, retire.Format(time.RFC3339))
	}
	if err := q.DKIMKeySetState(ctx, dbsqlc.DKIMKeySetStateParams{TenantID: d.TenantID, ID: k.ID, State: KeyActive, ActivatedAt: &now}); err != nil {
		return keyEvent{}, fmt.Errorf("error activating dkim key: %w", err)
	}
	return keyEvent{"dkim_key_activated", "dkim.key_activated", reason}, nil
}

// rotationDue is an active key whose scheduled rotation is due within RotationNotice.
type rotationDue struct {
	key DKIMKey
	due time.Time
}

// rotationsDue lists d's active keys due for scheduled rotation at now that have no
// successor yet.
func (s *Service) rotationsDue(d *Domain, now time.Time) []rotationDue {
	if d.DKIMRotationDays == nil {
		return nil
	}
	var out []rotationDue
	for _, k := range d.DKIMKeys {
		if k.State != KeyActive || d.key(KeyPending, k.Algorithm) != nil {
			continue
		}
		since := k.CreatedAt
		if k.ActivatedAt != nil {
			since = *k.ActivatedAt
		}
		due := since.Add(time.Duration(*d.DKIMRotationDays) * 24 * time.Hour)
		if !now.Before(due.Add(-s.cfg.RotationNotice)) {
			out = append(out, rotationDue{key: k, due: due})
		}
	}
	return out
}

// rotationMaterial generates the successors' key pairs of the rotations due, before the
// check's transaction locks the domain (an RSA key takes a while to generate).
func (s *Service) rotationMaterial(d *Domain, now time.Time) (map[string]keyMaterial, error) {
	out := map[string]keyMaterial{}
	for _, r := range s.rotationsDue(d, now) {
		m, err := generateKey(r.key.Algorithm, s.cfg.KeyBits)
		if err != nil {
			return nil, err
		}
		out[r.key.Algorithm] = m
	}
	return out, nil
}

// scheduleRotation creates the successor of each active key whose scheduled rotation is
// due within RotationNotice, so the tenant can publish it before the date. A rotation
// that became due after material was generated waits for the next check.
func (s *Service) scheduleRotation(ctx context.Context, q *dbsqlc.Queries, d *Domain, material map[string]keyMaterial, now time.Time) ([]keyEvent, error) {
	var events []keyEvent
	for _, r := range s.rotationsDue(d, now) {
		m, ok := material[r.key.Algorithm]
		if !ok {
			continue
		}
		gen, err := s.nextGeneration(ctx, q, d, r.key.Algorithm)
		if err != nil {
			return nil, err
		}
		next, err := s.insertKey(ctx, q, d, m, s.cfg.selectorFor(gen, r.key.Algorithm), KeyPending, now)
		if err != nil {
			return nil, err
		}
		events = append(events, keyEvent{"dkim_rotation_due", "dkim.rotation_due", fmt.Sprintf(
			"The DKIM key %s (%s) is due for rotation on %s (every %d days). Publish the new key's record at %s._domainkey.%s (see the records list): once it verifies, signing switches to it.",
			r.key.Selector, r.key.Algorithm, r.due.Format(time.DateOnly), *d.DKIMRotationDays, next.Selector, d.Name)})
	}
	return events, nil
}

// dkimPassed reports whether the DKIM check of selector passed in results.
func dkimPassed(results []dnscheck.CheckResult, selector string) bool {
	for _, r := range results {
		if r.Check == CheckDKIM && r.Selector == selector {
			return r.Status == dnscheck.StatusPass
		}
	}
	return false
}

// requiredResults drops the DKIM results of pending keys: a key that does not sign yet
// cannot make the domain fail.
func requiredResults(results []dnscheck.CheckResult, keys []DKIMKey) []dnscheck.CheckResult {
	pending := map[string]bool{}
	for _, k := range keys {
		if k.State == KeyPending {
			pending[k.Selector] = true
		}
	}
	out := make([]dnscheck.CheckResult, 0, len(results))
	for _, r := range results {
		if r.Check != CheckDKIM || !pending[r.Selector] {
			out = append(out, r)
		}
	}
	return out
}

// DKIMSigners returns the signing options for mail from domain: one per active key (RSA,
// and Ed25519 when enabled). It does not judge the domain's status: CheckSender does,
// when a message is accepted.
func (s *Service) DKIMSigners(ctx context.Context, tenantID, domain string) ([]delivery.DKIMOptions, error) {
	d, err := s.GetByName(ctx, tenantID, domain)
	if err != nil {
		return nil, err
	}
	var out []delivery.DKIMOptions
	for _, k := range d.DKIMKeys {
		if k.State != KeyActive {
			continue
		}
		signer, err := s.openKey(d, k)
		if err != nil {
			return nil, err
		}
		out = append(out, delivery.DKIMOptions{Domain: d.Name, Selector: k.Selector, Signer: signer})
	}
	if len(out) == 0 {
		return nil, store.ErrNotFound
	}
	return out, nil
}

func (s *Service) openKey(d *Domain, k DKIMKey) (crypto.Signer, error) {
	der, err := s.box.Open(k.sealedKeyID, k.sealed, DKIMKeyContext(k.ID))
	if err != nil {
		return nil, fmt.Errorf("error opening dkim key %s of %s: %w", k.Selector, d.Name, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("error parsing dkim key %s of %s: %w", k.Selector, d.Name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dkim key %s of %s is a %T, not a signer", k.Selector, d.Name, key)
	}
	return signer, nil
}
