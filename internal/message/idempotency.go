package message

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// IdempotencyWindow is how long a key remembers its first response.
const IdempotencyWindow = 24 * time.Hour

// Idempotency is an Idempotency-Key with the request it came with.
type Idempotency struct {
	Key string
	// Hash identifies the request body; the same key with another body is a conflict.
	Hash []byte
}

// NewIdempotency hashes a request (the operation and the body the client sent), so a key
// reused for another operation or body is a conflict.
func NewIdempotency(key, operation string, body []byte) *Idempotency {
	h := sha256.New()
	h.Write([]byte(operation + "\n"))
	h.Write(body)
	return &Idempotency{Key: key, Hash: h.Sum(nil)}
}

// replay returns the stored response of a key seen within the window (outside any
// transaction: the common case of a client retry), or nil.
func (s *Service) replay(ctx context.Context, tenantID string, idem *Idempotency) ([]byte, error) {
	row, err := s.q.IdempotencyKeyGet(ctx, dbsqlc.IdempotencyKeyGetParams{TenantID: tenantID, Key: idem.Key})
	if errors.Is(store.MapError(err), store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading idempotency key: %w", err)
	}
	if s.NowFunc().Sub(row.CreatedAt) > IdempotencyWindow || row.StatusCode == 0 {
		return nil, nil
	}
	return answer(row, idem)
}

// claim records the key in tx. When another request holds it, PostgreSQL waits for that
// transaction, and its stored response is returned instead.
func (s *Service) claim(ctx context.Context, tx pgx.Tx, tenantID string, idem *Idempotency) ([]byte, error) {
	q := s.q.WithTx(tx)
	_, err := q.IdempotencyKeyClaim(ctx, dbsqlc.IdempotencyKeyClaimParams{
		TenantID: tenantID, Key: idem.Key, RequestHash: idem.Hash, ExpiredBefore: s.NowFunc().Add(-IdempotencyWindow),
	})
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("error claiming idempotency key: %w", err)
	}
	row, err := q.IdempotencyKeyGet(ctx, dbsqlc.IdempotencyKeyGetParams{TenantID: tenantID, Key: idem.Key})
	if err != nil {
		return nil, fmt.Errorf("error reading idempotency key: %w", err)
	}
	return answer(row, idem)
}

func answer(row dbsqlc.IdempotencyKey, idem *Idempotency) ([]byte, error) {
	if string(row.RequestHash) != string(idem.Hash) {
		return nil, &IdempotencyConflictError{Key: idem.Key}
	}
	return row.Response, nil
}

func (s *Service) remember(ctx context.Context, tx pgx.Tx, tenantID string, idem *Idempotency, resp any) error {
	if idem == nil {
		return nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("error encoding response: %w", err)
	}
	err = s.q.WithTx(tx).IdempotencyKeySetResponse(ctx, dbsqlc.IdempotencyKeySetResponseParams{TenantID: tenantID, Key: idem.Key, StatusCode: 202, Response: b})
	if err != nil {
		return fmt.Errorf("error storing idempotent response: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys deletes keys older than the window.
func (s *Service) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	n, err := s.q.IdempotencyKeyDeleteExpired(ctx, s.NowFunc().Add(-IdempotencyWindow))
	if err != nil {
		return 0, fmt.Errorf("error purging idempotency keys: %w", err)
	}
	return n, nil
}
