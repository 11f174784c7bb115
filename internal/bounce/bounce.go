// Package bounce takes in what comes back for platform-connector mail: the VERP return path
// that ties a bounce to its message (an HMAC'd token), the SMTP listener at the operator's
// bounce domain, and the intake that records delivery status notifications and complaints on
// the message's timeline and suppresses the addresses they condemn. Reports it cannot read or
// tie to a message are kept whole for the operator.
package bounce

import (
	"log/slog"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
	"github.com/sendwerk/sendwerk/internal/suppression"
)

// Service records bounce reports.
type Service struct {
	db           store.DB
	q            *dbsqlc.Queries
	tokens       *Tokens
	suppressions *suppression.Service
	logger       *slog.Logger
}

// NewService returns a Service; tokens may be nil when no bounce domain is configured (then
// every report is unmatched).
func NewService(db store.DB, tokens *Tokens, suppressions *suppression.Service, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, q: dbsqlc.New(db), tokens: tokens, suppressions: suppressions, logger: logger}
}
