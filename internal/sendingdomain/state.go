package sendingdomain

import (
	"fmt"
	"time"

	"github.com/sendwerk/sendwerk/internal/dnscheck"
)

// Names of the checks, in the order they are reported.
const (
	CheckOwnership = "ownership"
	CheckSPF       = "spf"
	CheckDKIM      = "dkim"
	CheckDMARC     = "dmarc"
)

// Outcomes of one check of a domain, judged on the required checks (ownership and DKIM).
const (
	OutcomePass      = "pass"
	OutcomeFail      = "fail"
	OutcomeTempError = "temperror"
)

// requiredChecks decide a domain's status. SPF is required only for sending through the
// platform relay (see CheckSender) and DMARC is informational.
var requiredChecks = []string{CheckOwnership, CheckDKIM}

// verdict is what a set of results means for the domain: the outcome and, when it is not
// a pass, the result that explains why.
type verdict struct {
	outcome string
	cause   *dnscheck.CheckResult
}

// judge picks the outcome: an authoritative failure of any required check is a failure,
// even when another required check hit a DNS error; a DNS error without any failure is a
// temperror, which never moves a domain.
func judge(results []dnscheck.CheckResult) verdict {
	var temp *dnscheck.CheckResult
	for _, name := range requiredChecks {
		for i := range results {
			r := &results[i]
			if r.Check != name {
				continue
			}
			switch r.Status {
			case dnscheck.StatusFail:
				return verdict{outcome: OutcomeFail, cause: r}
			case dnscheck.StatusTempError:
				if temp == nil {
					temp = r
				}
			}
		}
	}
	if temp != nil {
		return verdict{outcome: OutcomeTempError, cause: temp}
	}
	return verdict{outcome: OutcomePass}
}

// state is the part of a domain the state machine changes.
type state struct {
	Status        string
	VerifiedAt    *time.Time
	FirstFailedAt *time.Time
	RevokesAt     *time.Time
	Failures      int
}

func stateOf(d *Domain) state {
	return state{Status: d.Status, VerifiedAt: d.VerifiedAt, FirstFailedAt: d.FirstFailedAt, RevokesAt: d.RevokesAt, Failures: d.ConsecutiveFailures}
}

// transition is a status change with its reason, for the event log.
type transition struct {
	From, To string
	Code     string
	Reason   string
}

// next applies one check's verdict at now:
//
//	pending  --pass--> verified
//	verified --fail--> at_risk   (first_failed_at = now, revokes_at = now + grace)
//	at_risk  --fail--> revoked   once now >= revokes_at and failures >= GraceChecks
//	at_risk, revoked --pass--> verified
//
// A temperror changes nothing: neither status nor counters.
func (c Config) next(cur state, v verdict, now time.Time) (state, *transition) {
	out := cur
	switch v.outcome {
	case OutcomeTempError:
		return cur, nil
	case OutcomePass:
		out.Failures, out.FirstFailedAt, out.RevokesAt = 0, nil, nil
		if cur.Status == StatusVerified {
			return out, nil
		}
		out.Status, out.VerifiedAt = StatusVerified, &now
		return out, c.passed(cur.Status)
	}
	switch cur.Status {
	case StatusPending:
		return out, nil
	case StatusVerified:
		revokes := now.Add(c.GracePeriod)
		out.Status, out.FirstFailedAt, out.RevokesAt, out.Failures = StatusAtRisk, &now, &revokes, 1
		return out, &transition{From: cur.Status, To: StatusAtRisk, Code: v.cause.Code, Reason: fmt.Sprintf(
			"%s The domain keeps its send rights until %s; if the records still fail then (and after at least %d failed checks in a row), it is revoked.",
			v.cause.Message, revokes.Format(time.RFC3339), c.GraceChecks)}
	case StatusAtRisk:
		out.Failures++
		if out.RevokesAt == nil || now.Before(*out.RevokesAt) || out.Failures < c.GraceChecks {
			return out, nil
		}
		out.Status, out.RevokesAt = StatusRevoked, nil
		return out, &transition{From: cur.Status, To: StatusRevoked, Code: v.cause.Code, Reason: fmt.Sprintf(
			"The records have failed since %s (%d checks in a row), longer than the grace period: %s Send rights are withdrawn until the records pass again.",
			cur.FirstFailedAt.Format(time.RFC3339), out.Failures, v.cause.Message)}
	default: // revoked
		out.Failures++
		return out, nil
	}
}

func (c Config) passed(from string) *transition {
	t := &transition{From: from, To: StatusVerified, Code: "domain.verified"}
	if from == StatusPending {
		t.Reason = "The ownership and DKIM records pass: the domain is verified and may send."
	} else {
		t.Code, t.Reason = "domain.restored", "The records pass again: send rights are restored."
	}
	return t
}

// nextCheck is when a domain in status is checked next: pending domains often during their
// first PendingFor, every other domain at the verified cadence.
func (c Config) nextCheck(status string, createdAt, now time.Time) time.Time {
	if status == StatusPending && now.Sub(createdAt) < c.PendingFor {
		return now.Add(c.IntervalPending)
	}
	return now.Add(c.IntervalVerified)
}
