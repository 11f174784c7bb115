package message

import (
	"time"

	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// observe tells the configured observer about an attempt, with the upstream's reply code
// also when it accepted; m's readiness is its submission or, when later, its send_at.
func (w *DeliverWorker) observe(ar *attemptResult, took time.Duration, m dbsqlc.Message) {
	if w.cfg.Observer == nil {
		return
	}
	o := ar.outcome
	if o.SMTPCode == 0 && ar.result != nil {
		o.SMTPCode = ar.result.Reply.Code
	}
	ready := m.CreatedAt
	if m.SendAt != nil && m.SendAt.After(ready) {
		ready = *m.SendAt
	}
	w.cfg.Observer.ObserveAttempt(o, took, ready)
}
