package connector

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/sendwerk/sendwerk/internal/cache"
	"github.com/sendwerk/sendwerk/internal/ids"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/validate"
)

// RelayUsernamePrefix starts every relay user name, so one is recognisable in a mail
// server's configuration.
const RelayUsernamePrefix = "sw-"

// ErrRelayAuthFailed is every refused relay login: unknown user, wrong password or a
// revoked credential look the same to the client.
var ErrRelayAuthFailed = errors.New("relay login failed")

// RelayCredential lets a mail server log in to the SMTP relay and send through one
// connector. The password exists only when it is created.
type RelayCredential struct {
	ID          string
	TenantID    string
	ConnectorID string
	Name        string
	Username    string
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
	CreatedAt   time.Time
}

// Status is "revoked" or "active".
func (c *RelayCredential) Status() string {
	if c.RevokedAt != nil {
		return "revoked"
	}
	return "active"
}

// argon2id parameters (RFC 9106 / OWASP: 19 MiB, 2 passes, 1 lane). A login costs a few tens
// of milliseconds of one core; successful logins are cached briefly (see verifyCacheTTL).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// verifyCacheTTL is how long a verified user name and password skip the slow hash: a mail
// server opening many sessions in a row pays for one verification a minute, not one each.
const verifyCacheTTL = time.Minute

// verifyCacheMax bounds the cache; when full, expired entries go, then everything.
const verifyCacheMax = 10000

// RelayAuthResult tells how a login went, for logs and metrics; only OK lets the session on.
type RelayAuthResult string

// Results of a relay login.
const (
	RelayAuthOK            RelayAuthResult = "ok"
	RelayAuthUnknownUser   RelayAuthResult = "unknown_user"
	RelayAuthWrongPassword RelayAuthResult = "wrong_password"
	RelayAuthRevoked       RelayAuthResult = "revoked"
)

// RelayCredentials creates, lists, revokes and verifies relay credentials.
type RelayCredentials struct {
	q *dbsqlc.Queries
	// slots bounds concurrent argon2 computations (each holds argonMemoryKiB of memory).
	slots chan struct{}

	mu    sync.Mutex
	cache map[[32]byte]time.Time
	// flights are the verifications being computed, by cache key: a login identical to one
	// in flight (a mail server opening many sessions at once) waits for its answer instead
	// of computing the same hash again.
	flights map[[32]byte]*verifyFlight
	// hashes counts the slow hashes computed (for tests).
	hashes atomic.Int64

	// active caches Active's answer by user name (nil without a TTL): a revoke through
	// this service drops it at once; one by another process is seen within the TTL.
	active *cache.TTL[string, bool]

	NowFunc func() time.Time
}

// NewRelayCredentials returns the service over a pool or transaction.
func NewRelayCredentials(db store.DB) *RelayCredentials {
	return NewRelayCredentialsWith(db, 0)
}

// NewRelayCredentialsWith returns the service with Active's answers cached for ttl (0: not
// cached); a process's one service should be the one that revokes.
func NewRelayCredentialsWith(db store.DB, ttl time.Duration) *RelayCredentials {
	r := &RelayCredentials{
		q: dbsqlc.New(db), slots: make(chan struct{}, max(runtime.GOMAXPROCS(0), 1)),
		cache: map[[32]byte]time.Time{}, flights: map[[32]byte]*verifyFlight{}, NowFunc: time.Now,
	}
	if ttl > 0 {
		r.active = cache.New[string, bool](ttl, 0)
		r.active.SetClock(func() time.Time { return r.NowFunc() })
	}
	return r
}

// Create makes a credential for one of tenantID's connectors and returns it with its
// password, which exists only in this return value.
func (r *RelayCredentials) Create(ctx context.Context, tenantID, connectorID, name string) (*RelayCredential, string, error) {
	if utf8.RuneCountInString(name) > 100 || strings.ContainsAny(name, "\r\n") {
		return nil, "", validate.Field("name", "must be one line of at most 100 characters")
	}
	if !ids.Valid(ids.Connector, connectorID) {
		return nil, "", store.ErrNotFound
	}
	password := randomString(passwordAlphabet, 32)
	hash := hashRelayPassword(password)
	for attempt := 0; ; attempt++ {
		row, err := r.q.RelayCredentialInsert(ctx, dbsqlc.RelayCredentialInsertParams{
			ID: ids.New(ids.RelayCredential), TenantID: tenantID, ConnectorID: connectorID,
			Name: name, Username: RelayUsernamePrefix + randomString(usernameAlphabet, 12), PasswordHash: hash,
		})
		err = store.MapError(err)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue // a user name collision: astronomically rare, but the index decides
		}
		if err != nil {
			return nil, "", fmt.Errorf("error inserting relay credential: %w", err)
		}
		return relayFromRow(row), password, nil
	}
}

// List returns up to limit of a connector's credentials after afterID, revoked ones too.
func (r *RelayCredentials) List(ctx context.Context, tenantID, connectorID, afterID string, limit int) ([]*RelayCredential, error) {
	rows, err := r.q.RelayCredentialList(ctx, dbsqlc.RelayCredentialListParams{TenantID: tenantID, ConnectorID: connectorID, AfterID: afterID, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing relay credentials: %w", err)
	}
	out := make([]*RelayCredential, len(rows))
	for i, row := range rows {
		out[i] = relayFromRow(row)
	}
	return out, nil
}

// Revoke stops a credential from working at its next login; revoking twice keeps the
// first time. Sessions already logged in finish their current message and get no next one.
func (r *RelayCredentials) Revoke(ctx context.Context, tenantID, connectorID, id string) (*RelayCredential, error) {
	if !ids.Valid(ids.RelayCredential, id) {
		return nil, store.ErrNotFound
	}
	row, err := r.q.RelayCredentialRevoke(ctx, dbsqlc.RelayCredentialRevokeParams{TenantID: tenantID, ConnectorID: connectorID, ID: id})
	if err != nil {
		return nil, fmt.Errorf("error revoking relay credential: %w", store.MapError(err))
	}
	r.active.Delete(row.Username)
	return relayFromRow(row), nil
}

// Active reports whether the credential still exists and is not revoked; a session checks it
// before each message, so a revocation takes effect without waiting for the next login.
func (r *RelayCredentials) Active(ctx context.Context, username string) (bool, error) {
	return r.active.Get(username, func() (bool, error) {
		row, err := r.q.RelayCredentialGetByUsername(ctx, username)
		if errors.Is(store.MapError(err), store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("error getting relay credential: %w", err)
		}
		return row.RevokedAt == nil, nil
	})
}

// Authenticate checks a relay login. Unknown users cost the same hash as wrong passwords, so
// timing does not tell which user names exist. The result says why a login failed (for the
// log); the error is ErrRelayAuthFailed for every refusal and something else only when the
// database fails.
func (r *RelayCredentials) Authenticate(ctx context.Context, username, password string) (*RelayCredential, RelayAuthResult, error) {
	// A user name PostgreSQL cannot compare as text (invalid UTF-8, NUL) names nobody.
	if len(username) > 100 || len(password) > 200 || !utf8.ValidString(username) || strings.IndexByte(username, 0) >= 0 {
		return nil, RelayAuthUnknownUser, ErrRelayAuthFailed
	}
	row, err := r.q.RelayCredentialGetByUsername(ctx, username)
	if err != nil {
		if !errors.Is(store.MapError(err), store.ErrNotFound) {
			return nil, "", fmt.Errorf("error getting relay credential: %w", err)
		}
		// The same cost as a known user; the user name is part of the key as for a known
		// one, so concurrent guesses share a computation exactly as often either way.
		_, _ = r.verify(ctx, dummyHash, username, password)
		return nil, RelayAuthUnknownUser, ErrRelayAuthFailed
	}
	ok, err := r.verify(ctx, row.PasswordHash, username, password)
	if err != nil {
		return nil, "", err
	}
	switch {
	case !ok:
		return nil, RelayAuthWrongPassword, ErrRelayAuthFailed
	case row.RevokedAt != nil:
		return nil, RelayAuthRevoked, ErrRelayAuthFailed
	}
	if err := r.q.RelayCredentialTouch(ctx, dbsqlc.RelayCredentialTouchParams{TenantID: row.TenantID, ID: row.ID}); err != nil {
		return nil, "", fmt.Errorf("error recording relay credential use: %w", err)
	}
	return relayFromRow(row), RelayAuthOK, nil
}

// verifyFlight is one verification being computed; done closes when ok and err are set.
type verifyFlight struct {
	done chan struct{}
	ok   bool
	err  error
}

// verify compares password with the stored hash, through the cache of recent successes. A
// verification of the same stored hash, user name and password already being computed is
// waited for rather than repeated; only such identical logins share one.
func (r *RelayCredentials) verify(ctx context.Context, stored, username, password string) (bool, error) {
	key := sha256Key(stored, username, password)
	for {
		now := r.NowFunc()
		r.mu.Lock()
		if r.cachedLocked(key, now) {
			r.mu.Unlock()
			return true, nil
		}
		if f := r.flights[key]; f != nil {
			r.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			if f.err != nil {
				continue // the computing login gave up (its context ended): compute anew
			}
			return f.ok, nil
		}
		f := &verifyFlight{done: make(chan struct{})}
		r.flights[key] = f
		r.mu.Unlock()

		f.ok, f.err = r.compute(ctx, stored, password)
		r.mu.Lock()
		delete(r.flights, key)
		if f.ok {
			r.rememberLocked(key, now)
		}
		r.mu.Unlock()
		close(f.done)
		return f.ok, f.err
	}
}

// compute runs the slow hash in one of the slots.
func (r *RelayCredentials) compute(ctx context.Context, stored, password string) (bool, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-r.slots }()
	r.hashes.Add(1)
	return checkRelayPassword(stored, password), nil
}

// sha256Key is the cache key of a verification: the stored hash is part of it, so a new
// password (a new row) never matches an old entry.
func sha256Key(stored, username, password string) [32]byte {
	return sha256.Sum256([]byte(stored + "\x00" + username + "\x00" + password))
}

func (r *RelayCredentials) cached(key [32]byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cachedLocked(key, now)
}

// cachedLocked reports a live cached success; r.mu is held.
func (r *RelayCredentials) cachedLocked(key [32]byte, now time.Time) bool {
	exp, ok := r.cache[key]
	return ok && now.Before(exp)
}

// rememberLocked caches a success; r.mu is held.
func (r *RelayCredentials) rememberLocked(key [32]byte, now time.Time) {
	if len(r.cache) >= verifyCacheMax {
		for k, exp := range r.cache {
			if !now.Before(exp) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= verifyCacheMax {
			clear(r.cache)
		}
	}
	r.cache[key] = now.Add(verifyCacheTTL)
}

// hashRelayPassword returns the PHC string of an argon2id hash with a random salt.
func hashRelayPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt)
	return encodeArgon(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen), argonMemoryKiB, argonTime, argonThreads)
}

func encodeArgon(salt, key []byte, m, t uint32, p uint8) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkRelayPassword recomputes the hash with the stored parameters and compares in
// constant time. Unparseable hashes never match.
func checkRelayPassword(stored, password string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 10 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified for unknown user names so they cost as much as known ones.
var dummyHash = hashRelayPassword("no user has this password")

// Alphabets of generated user names and passwords: no look-alikes (0/O, 1/l/I) and nothing
// that needs quoting in a shell, a Postfix sasl_passwd map or a settings form.
const (
	usernameAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
)

// randomString returns n random characters of alphabet.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[randIndex(len(alphabet))]
	}
	return string(b)
}

// randIndex returns a uniform random index below n by rejection sampling.
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

func relayFromRow(r dbsqlc.RelayCredential) *RelayCredential {
	return &RelayCredential{
		ID: r.ID, TenantID: r.TenantID, ConnectorID: r.ConnectorID, Name: r.Name, Username: r.Username,
		LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt,
	}
}

// ForgetAll drops every cached Active answer (a tenant was deleted, with its credentials).
func (r *RelayCredentials) ForgetAll() { r.active.Purge() }
