package message

import (
	"time"

	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// observe tells the configured observer about an attempt, with the upstream's reply code
// also when it accepted; m's readiness is its submission or, when later, its send_at.
func (d *Deliverer) observe(a *Attempt, took time.Duration, m dbsqlc.Message) {
	if d.Observer == nil {
		return
	}
	o := a.Outcome
	if o.SMTPCode == 0 && a.Result != nil {
		o.SMTPCode = a.Result.Reply.Code
	}
	ready := m.CreatedAt
	if m.SendAt != nil && m.SendAt.After(ready) {
		ready = *m.SendAt
	}
	d.Observer.ObserveAttempt(o, took, ready)
}
