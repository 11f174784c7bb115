package delivery_test

import (
	"cmp"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// scripted returns a Script whose hook at the given stage answers with reply.
func scripted(stage delivery.Stage, reply *smtp.SMTPError) *smtptest.Script {
	switch stage {
	case delivery.StageMail:
		return &smtptest.Script{MailFunc: func(string) *smtp.SMTPError { return reply }}
	case delivery.StageRcpt:
		return &smtptest.Script{RcptFunc: func(string) *smtp.SMTPError { return reply }}
	}
	return &smtptest.Script{DataFunc: func(smtptest.Message) *smtp.SMTPError { return reply }}
}

func TestClassifyRealFailures(t *testing.T) {
	t.Parallel()

	type want struct {
		class    delivery.Class
		code     string
		smtpCode int
		enhanced string
		stage    delivery.Stage
	}
	cases := []struct {
		name string
		opts smtptest.Opts
		sec  delivery.Security
		mech delivery.AuthMechanism
		mod  func(*delivery.Settings)
		want want
	}{
		{
			name: "ServiceClosing421",
			opts: smtptest.Opts{Script: scripted(delivery.StageMail, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"})},
			want: want{delivery.ClassTemporary, delivery.CodeConnectionClosing, 421, "4.3.2", delivery.StageMail},
		},
		{
			name: "ServiceClosing421AtRcpt",
			opts: smtptest.Opts{Script: scripted(delivery.StageRcpt, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many errors, closing"})},
			want: want{delivery.ClassTemporary, delivery.CodeConnectionClosing, 421, "4.7.0", delivery.StageRcpt},
		},
		{
			name: "ServiceClosing421AtData",
			opts: smtptest.Opts{Script: scripted(delivery.StageData, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"})},
			want: want{delivery.ClassTemporary, delivery.CodeConnectionClosing, 421, "4.3.2", delivery.StageData},
		},
		{
			name: "LocalError451",
			opts: smtptest.Opts{Script: scripted(delivery.StageData, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"})},
			want: want{delivery.ClassTemporary, delivery.CodeDeferred, 451, "4.3.0", delivery.StageData},
		},
		{
			name: "MailboxFull552",
			opts: smtptest.Opts{Script: scripted(delivery.StageData, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too big"})},
			want: want{delivery.ClassPermanent, delivery.CodeRejected, 552, "5.3.4", delivery.StageData},
		},
		{
			name: "SenderRejected553",
			opts: smtptest.Opts{Script: scripted(delivery.StageMail, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"})},
			want: want{delivery.ClassPermanent, delivery.CodeRejected, 553, "5.7.1", delivery.StageMail},
		},
		{
			name: "OneRecipientUnknown550",
			opts: smtptest.Opts{Script: &smtptest.Script{RcptFunc: rejectUnknown}},
			want: want{delivery.ClassPermanent, delivery.CodeRecipientRejected, 550, "5.1.1", delivery.StageRcpt},
		},
		{
			name: "RecipientGreylisted450",
			opts: smtptest.Opts{Script: scripted(delivery.StageRcpt, &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "greylisted"})},
			want: want{delivery.ClassTemporary, delivery.CodeRecipientRejected, 450, "4.2.0", delivery.StageRcpt},
		},
		{
			name: "DroppedMidData",
			opts: smtptest.Opts{DropMidData: true},
			want: want{delivery.ClassTemporary, delivery.CodeConnectionDropped, 0, "", delivery.StageData},
		},
		{
			name: "SlowServerTimesOut",
			opts: smtptest.Opts{Delay: time.Second},
			mod:  func(s *delivery.Settings) { s.CommandTimeout = 100 * time.Millisecond },
			want: want{delivery.ClassTemporary, delivery.CodeCommandTimeout, 0, "", delivery.StageMail},
		},
		{
			name: "AuthRequired530",
			opts: smtptest.Opts{RequireAuth: true},
			want: want{delivery.ClassConfig, delivery.CodeAuthRequired, 530, "5.7.0", delivery.StageMail},
		},
		{
			name: "WrongPassword535",
			opts: smtptest.Opts{StartTLS: true, Auth: true, Users: map[string]string{testUser: "other"}},
			sec:  delivery.SecurityStartTLS,
			mech: delivery.AuthLogin,
			want: want{delivery.ClassConfig, delivery.CodeAuthFailed, 535, "5.7.8", delivery.StageConnect},
		},
		{
			name: "MechanismNotOffered",
			opts: smtptest.Opts{StartTLS: true, Auth: true, Users: testUsers(), AuthMechanisms: []string{smtptest.MechPlain}},
			sec:  delivery.SecurityStartTLS,
			mech: delivery.AuthCRAMMD5,
			want: want{delivery.ClassConfig, delivery.CodeAuthMechanismUnsupported, 0, "", delivery.StageConnect},
		},
		{
			// The same condition and code as the probe's ClosingAtEHLO421.
			name: "ServiceClosing421AtEHLO",
			opts: smtptest.Opts{Script: &smtptest.Script{HelloFunc: func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections"}
			}}},
			want: want{delivery.ClassTemporary, delivery.CodeConnectionClosing, 421, "4.7.0", delivery.StageConnect},
		},
		{
			// The same condition the probe reports as auth.requires_tls (probe_test.go).
			name: "AuthOnlyAfterStartTLS",
			opts: smtptest.Opts{StartTLS: true, Auth: true, Users: testUsers(), RequireTLSForAuth: true},
			sec:  delivery.SecurityNone,
			mech: delivery.AuthPlain,
			want: want{delivery.ClassConfig, delivery.CodeAuthRequiresTLS, 0, "", delivery.StageConnect},
		},
		{
			name: "StartTLSMissing",
			opts: smtptest.Opts{},
			sec:  delivery.SecurityStartTLS,
			want: want{delivery.ClassConfig, delivery.CodeStartTLSUnsupported, 0, "", delivery.StageConnect},
		},
		{
			name: "UntrustedCertificate",
			opts: smtptest.Opts{StartTLS: true},
			sec:  delivery.SecurityStartTLS,
			mod:  func(s *delivery.Settings) { s.RootCAs = nil },
			want: want{delivery.ClassConfig, delivery.CodeTLSCertificateInvalid, 0, "", delivery.StageConnect},
		},
		{
			name: "ImplicitTLSOnPlainServer",
			opts: smtptest.Opts{},
			sec:  delivery.SecurityTLS,
			want: want{delivery.ClassConfig, delivery.CodeTLSNotTLS, 0, "", delivery.StageConnect},
		},
		{
			name: "ConnectionRefused",
			mod:  func(s *delivery.Settings) { s.Port = smtptest.ClosedPort(t) },
			want: want{delivery.ClassTemporary, delivery.CodeTCPRefused, 0, "", delivery.StageConnect},
		},
		{
			name: "DroppedAfterEHLO",
			opts: smtptest.Opts{StartTLS: true, DropAfterEHLO: true},
			sec:  delivery.SecurityStartTLS,
			want: want{delivery.ClassTemporary, delivery.CodeConnectionDropped, 0, "", delivery.StageConnect},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.opts.Users == nil {
				tc.opts.Users = testUsers()
			}
			srv := smtptest.NewServer(t, tc.opts)
			s := serverSettings(srv, cmp.Or(tc.sec, delivery.SecurityNone))
			if tc.mech != "" {
				s = withAuth(s, tc.mech)
			}
			if tc.mod != nil {
				tc.mod(&s)
			}
			pool, err := delivery.NewPool(s, nil)
			require.NoError(t, err)
			defer pool.Close()

			_, err = pool.Send(context.Background(), delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test", "unknown@example.test"}}, testMessage("classify"))
			require.Error(t, err)
			o := delivery.Classify(err)
			require.Equal(t, tc.want.class, o.Class, "%v", err)
			require.Equal(t, tc.want.code, o.Code, "%v", err)
			require.Equal(t, tc.want.smtpCode, o.SMTPCode, "%v", err)
			require.Equal(t, tc.want.enhanced, o.EnhancedCode, "%v", err)
			var de *delivery.Error
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.want.stage, de.Stage)
			require.Equal(t, tc.want.class == delivery.ClassPermanent, delivery.IsPermanent(err))
			require.Equal(t, tc.want.class == delivery.ClassTemporary, delivery.IsTemporary(err))
			require.Equal(t, tc.want.class == delivery.ClassConfig, delivery.IsConfig(err))
			require.Empty(t, srv.Messages())
			requireNoSecret(t, testPassword, err, o, de)
		})
	}
}

func TestRejectedRecipientIsReported(t *testing.T) {
	t.Parallel()
	b := setupPool(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: rejectUnknown}}, delivery.SecurityNone, delivery.AuthNone, nil)
	env := delivery.Envelope{From: "bounce@example.test", To: []string{"rcpt@example.test", "unknown@example.test"}}
	_, err := b.pool.Send(context.Background(), env, testMessage("rcpt"))
	var de *delivery.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, []delivery.RecipientResult{
		{Address: "rcpt@example.test", Accepted: true},
		{Address: "unknown@example.test", Reply: &delivery.Reply{Code: 550, EnhancedCode: "5.1.1", Text: "unknown@example.test: no such user"}},
	}, de.Recipients)
	require.Contains(t, err.Error(), "<unknown@example.test>: 550 5.1.1")
}

func TestTLSFailureAfterSuccessIsTemporary(t *testing.T) {
	t.Parallel()
	ca := smtptest.NewCA(t)
	b := setupPool(t, smtptest.Opts{StartTLS: true, CA: ca}, delivery.SecurityStartTLS, delivery.AuthNone, &delivery.PoolConfig{MaxMessagesPerConn: 1})
	_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("good"))
	require.NoError(t, err)

	b.srv.SetCertificate(smtptest.SelfSigned(t, smtptest.CertOpts{}))
	_, err = b.pool.Send(context.Background(), testEnvelope(), testMessage("renewal-broke"))
	o := delivery.Classify(err)
	require.Equal(t, delivery.CodeTLSCertificateInvalid, o.Code)
	require.Equal(t, delivery.ClassTemporary, o.Class)
	require.Contains(t, o.Text, "unknown authority")
}

func TestClassifyPlainErrors(t *testing.T) {
	t.Parallel()
	require.Equal(t, delivery.Outcome{Class: delivery.ClassDelivered, Code: delivery.CodeDelivered}, delivery.Classify(nil))
	require.Equal(t, delivery.CodeCanceled, delivery.Classify(context.Canceled).Code)
	require.True(t, delivery.IsTemporary(context.DeadlineExceeded))
	require.True(t, delivery.IsTemporary(errors.New("something odd")))
	require.False(t, delivery.IsPermanent(nil))
	o := delivery.Classify(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	require.Equal(t, delivery.Outcome{Class: delivery.ClassPermanent, Code: delivery.CodeRejected, SMTPCode: 550, EnhancedCode: "5.1.1", Text: "no such user"}, o)
}

func TestRepliesEchoingThePasswordAreRedacted(t *testing.T) {
	t.Parallel()
	echo := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused; did you mean " + testPassword + "?"}
	b := setupPool(t, smtptest.Opts{Auth: true, Script: scripted(delivery.StageMail, echo)}, delivery.SecurityNone, delivery.AuthPlain, nil)
	_, err := b.pool.Send(context.Background(), testEnvelope(), testMessage("echo"))
	require.ErrorContains(t, err, "did you mean [redacted]?")
	requireNoSecret(t, testPassword, err, delivery.Classify(err))

	srv := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{HelloFunc: func(string) *smtp.SMTPError { return echo }}})
	res := probe(t, withAuth(serverSettings(srv, delivery.SecurityNone), delivery.AuthPlain))
	require.Equal(t, delivery.CodeEHLORejected, res.Code)
	require.Contains(t, res.Message, "[redacted]")
}
