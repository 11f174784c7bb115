package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// sendBoth sends env to a server that offers PIPELINING and to one that does not, each
// started with opts, and returns both bundles and results.
func sendBoth(t *testing.T, opts smtptest.Opts, env delivery.Envelope) (piped, plain *poolBundle, pipedErr, plainErr error) {
	t.Helper()
	piped = setupPool(t, opts, delivery.SecurityNone, delivery.AuthNone, nil)
	opts.DisablePipelining = true
	plain = setupPool(t, opts, delivery.SecurityNone, delivery.AuthNone, nil)
	_, pipedErr = piped.pool.Send(context.Background(), env, testMessage("piped"))
	_, plainErr = plain.pool.Send(context.Background(), env, testMessage("plain"))
	return piped, plain, pipedErr, plainErr
}

// requireSameFailure checks that both errors are *delivery.Error values with the same
// classification, stage and per-recipient replies, and returns the pipelined one.
func requireSameFailure(t *testing.T, pipedErr, plainErr error) *delivery.Error {
	t.Helper()
	var piped, plain *delivery.Error
	require.ErrorAs(t, pipedErr, &piped)
	require.ErrorAs(t, plainErr, &plain)
	require.Equal(t, plain.Outcome, piped.Outcome)
	require.Equal(t, plain.Stage, piped.Stage)
	require.Equal(t, plain.Recipients, piped.Recipients)
	return piped
}

// requireConnectionKept sends one more message on each pool and checks that it went over
// the first connection, which the failed transaction left in step.
func requireConnectionKept(t *testing.T, bundles ...*poolBundle) {
	t.Helper()
	for _, b := range bundles {
		_, err := b.pool.Send(context.Background(), delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test"}}, testMessage("next"))
		require.NoError(t, err)
		require.Equal(t, 1, b.srv.Connections())
		require.Len(t, b.srv.Messages(), 1)
	}
}

func TestPipelining(t *testing.T) {
	t.Parallel()

	t.Run("AcceptedLoneRecipient", func(t *testing.T) {
		t.Parallel()
		env := delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test"}}
		piped, plain, pipedErr, plainErr := sendBoth(t, smtptest.Opts{}, env)
		require.NoError(t, pipedErr)
		require.NoError(t, plainErr)
		p, q := piped.srv.Messages()[0], plain.srv.Messages()[0]
		require.True(t, p.Pipelined, "RCPT came with MAIL")
		require.False(t, q.Pipelined, "control: without PIPELINING the client waits for each reply")
		require.Equal(t, env.To, p.To)
		require.Equal(t, smtp.Body8BitMIME, p.Body, "MAIL carries go-mail's parameters")
		require.Equal(t, q.Body, p.Body)
		require.Equal(t, string(testMessage("piped")), string(p.Data), "the body passes unchanged")
	})

	t.Run("AcceptedSeveralRecipients", func(t *testing.T) {
		t.Parallel()
		piped, plain, pipedErr, plainErr := sendBoth(t, smtptest.Opts{}, testEnvelope())
		require.NoError(t, pipedErr)
		require.NoError(t, plainErr)
		require.True(t, piped.srv.Messages()[0].Pipelined)
		require.False(t, plain.srv.Messages()[0].Pipelined)
		require.Equal(t, testEnvelope().To, piped.srv.Messages()[0].To)
	})

	t.Run("OneRecipientRefused", func(t *testing.T) {
		t.Parallel()
		env := delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test", "unknown@example.test"}}
		piped, plain, pipedErr, plainErr := sendBoth(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: rejectUnknown}}, env)
		de := requireSameFailure(t, pipedErr, plainErr)
		require.Equal(t, delivery.StageRcpt, de.Stage)
		require.Equal(t, delivery.CodeRecipientRejected, de.Outcome.Code)
		require.Equal(t, delivery.ClassPermanent, de.Outcome.Class)
		require.Len(t, de.Recipients, 2)
		require.True(t, de.Recipients[0].Accepted)
		require.Equal(t, 550, de.Recipients[1].Reply.Code)
		require.Empty(t, piped.srv.Messages(), "the message went to nobody")
		requireConnectionKept(t, piped, plain)
	})

	t.Run("LoneRecipientRefused", func(t *testing.T) {
		t.Parallel()
		// DATA was in the group: the upstream refuses it for want of recipients, and the
		// transaction is reset.
		env := delivery.Envelope{From: "bounce@example.test", To: []string{"unknown@example.test"}}
		piped, plain, pipedErr, plainErr := sendBoth(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: rejectUnknown}}, env)
		de := requireSameFailure(t, pipedErr, plainErr)
		require.Equal(t, delivery.StageRcpt, de.Stage)
		require.Equal(t, delivery.CodeRecipientRejected, de.Outcome.Code)
		require.Equal(t, delivery.ClassPermanent, de.Outcome.Class)
		require.Empty(t, piped.srv.Messages())
		requireConnectionKept(t, piped, plain)
	})

	t.Run("MailRefused", func(t *testing.T) {
		t.Parallel()
		refuse := func(string) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"}
		}
		// refuseFirst refuses the first MAIL of a server, so the next message can go.
		refuseFirst := func(pipelining bool) smtptest.Opts {
			var mails atomic.Int64
			return smtptest.Opts{DisablePipelining: !pipelining, Script: &smtptest.Script{MailFunc: func(from string) *smtp.SMTPError {
				if mails.Add(1) == 1 {
					return refuse(from)
				}
				return nil
			}}}
		}
		for _, env := range []delivery.Envelope{{From: "bounce@example.test", To: []string{"rcpt@example.test"}}, testEnvelope()} {
			piped := setupPool(t, refuseFirst(true), delivery.SecurityNone, delivery.AuthNone, nil)
			plain := setupPool(t, refuseFirst(false), delivery.SecurityNone, delivery.AuthNone, nil)
			_, pipedErr := piped.pool.Send(context.Background(), env, testMessage("piped"))
			_, plainErr := plain.pool.Send(context.Background(), env, testMessage("plain"))
			de := requireSameFailure(t, pipedErr, plainErr)
			require.Equal(t, delivery.StageMail, de.Stage, "%d recipients", len(env.To))
			require.Equal(t, 553, de.Outcome.SMTPCode)
			require.Equal(t, delivery.ClassPermanent, de.Outcome.Class)
			require.Empty(t, piped.srv.Messages())
			requireConnectionKept(t, piped, plain)
		}
	})
}

// testGate is a delivery.Gate the test settles.
type testGate struct {
	done chan struct{}
	err  error
}

func newTestGate() *testGate { return &testGate{done: make(chan struct{})} }

func (g *testGate) Done() <-chan struct{} { return g.done }
func (g *testGate) Err() error            { return g.err }

func TestSendAfter(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("Pipelining=%v", pipelining), func(t *testing.T) {
			t.Parallel()

			t.Run("DataWaitsForTheGate", func(t *testing.T) {
				t.Parallel()
				var gate *testGate
				mailed := make(chan struct{}, 1)
				opts := smtptest.Opts{DisablePipelining: !pipelining, Script: &smtptest.Script{
					MailFunc: func(string) *smtp.SMTPError { mailed <- struct{}{}; return nil },
					DataFunc: func(smtptest.Message) *smtp.SMTPError {
						select {
						case <-gate.done:
							return nil
						default:
							return &smtp.SMTPError{Code: 554, Message: "DATA before the gate opened"}
						}
					},
				}}
				for _, to := range [][]string{{"rcpt@example.test"}, testEnvelope().To} {
					gate = newTestGate()
					b := setupPool(t, opts, delivery.SecurityNone, delivery.AuthNone, nil)
					go func() {
						<-mailed
						time.Sleep(100 * time.Millisecond)
						close(gate.done)
					}()
					_, err := b.pool.SendAfter(context.Background(), delivery.Envelope{From: "bounce@example.test", To: to}, testMessage("gated"), gate)
					require.NoError(t, err)
					require.Len(t, b.srv.Messages(), 1)
				}
			})

			t.Run("FailedGateSendsNoData", func(t *testing.T) {
				t.Parallel()
				b := setupPool(t, smtptest.Opts{DisablePipelining: !pipelining}, delivery.SecurityNone, delivery.AuthNone, nil)
				gate := newTestGate()
				go func() {
					time.Sleep(50 * time.Millisecond)
					gate.err = errors.New("claim not durable")
					close(gate.done)
				}()
				_, err := b.pool.SendAfter(context.Background(), delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test"}}, testMessage("gated"), gate)
				require.ErrorContains(t, err, "claim not durable")
				var de *delivery.Error
				require.ErrorAs(t, err, &de)
				require.Equal(t, delivery.StageData, de.Stage)
				require.Empty(t, b.srv.Messages())
				requireConnectionKept(t, b)
			})
		})
	}
}
