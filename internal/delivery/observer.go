package delivery

import "time"

// Observer learns the outcome of every delivery attempt, for metrics. took is the time the
// attempt spent with the upstream; readyAt is when the message became due (its submission, or
// its send_at), so a delivered message's end-to-end latency is time.Since(readyAt).
type Observer interface {
	ObserveAttempt(o Outcome, took time.Duration, readyAt time.Time)
}
