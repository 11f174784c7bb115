package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // CRAM-MD5 is defined over HMAC-MD5.
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// auth logs in with the configured mechanism, if it is offered.
func (p *prober) auth(ctx context.Context, st *ProbeStep) *probeFailure {
	if p.s.AuthMechanism == AuthNone {
		st.Status = StepSkipped
		st.Detail = "no authentication configured"
		return nil
	}
	mech := strings.ToUpper(string(p.s.AuthMechanism))
	st.Mechanism = mech
	if fail := p.checkOffered(st, mech); fail != nil {
		return fail
	}
	reply, err := p.authenticate(ctx, p.saslClient())
	if err != nil && reply.Code == 0 {
		st.Detail = err.Error()
		return p.lost(ctx, "AUTH", err)
	}
	st.Reply, st.Detail = &reply, reply.String()
	if err != nil {
		return p.authFailure(mech, reply)
	}
	st.Detail = fmt.Sprintf("logged in as %s with %s: %s", p.s.Username, mech, reply)
	return nil
}

// checkOffered fails early when the server does not offer the mechanism: over plain text
// most servers hide AUTH until TLS, and credentials should not be tried blindly.
func (p *prober) checkOffered(st *ProbeStep, mech string) *probeFailure {
	offered := p.authMechanisms()
	switch {
	case len(offered) == 0 && !p.isTLS:
		st.Detail = "AUTH is not among the server's capabilities on this unencrypted connection"
		return &probeFailure{CodeAuthRequiresTLS, "The server offers no login over an unencrypted connection; servers usually allow login only after TLS. Choose STARTTLS (usually port 587) or TLS (usually port 465)."}
	case len(offered) == 0:
		st.Detail = "AUTH is not among the server's capabilities"
		return &probeFailure{CodeAuthMechanismUnsupported, fmt.Sprintf("The server on port %s offers no login at all. It may accept mail only from allowed addresses (then set authentication to none), or the submission port 587 is the right one.", p.port())}
	case !slices.Contains(offered, mech):
		st.Detail = "the server offers " + strings.Join(offered, ", ")
		return &probeFailure{CodeAuthMechanismUnsupported, fmt.Sprintf("The server does not offer %s login; it offers %s. Choose one of those.", mech, strings.Join(offered, ", "))}
	}
	return nil
}

// authMechanisms lists the offered mechanisms, including the old "AUTH=LOGIN" form.
func (p *prober) authMechanisms() []string {
	var mechs []string
	if args, ok := p.caps["AUTH"]; ok {
		mechs = strings.Fields(strings.ToUpper(args))
	}
	for name, args := range p.caps {
		if rest, ok := strings.CutPrefix(name, "AUTH="); ok {
			mechs = append(mechs, strings.Fields(strings.ToUpper(rest+" "+args))...)
		}
	}
	slices.Sort(mechs)
	return slices.Compact(mechs)
}

// authFailure explains a negative AUTH reply.
func (p *prober) authFailure(mech string, reply Reply) *probeFailure {
	switch {
	case reply.Code == 535 || reply.Code == 534:
		return &probeFailure{CodeAuthFailed, fmt.Sprintf("The server rejected the user name or password (%s). Check both; some providers (Microsoft 365, Gmail) require an app password or have SMTP login turned off for the account.", reply)}
	case reply.Code == 523 || reply.Code == 530 || reply.Code == 538:
		return &probeFailure{CodeAuthRequiresTLS, fmt.Sprintf("The server requires TLS before login (%s). Choose STARTTLS or TLS.", reply)}
	case reply.Code == 421:
		return closingFailure(reply)
	case reply.Code == 504:
		return &probeFailure{CodeAuthMechanismUnsupported, fmt.Sprintf("The server does not accept %s login (%s).", mech, reply)}
	case reply.Code >= 400 && reply.Code < 500:
		return &probeFailure{CodeAuthFailed, fmt.Sprintf("The server could not check the login right now (%s). Try again later.", reply)}
	}
	return &probeFailure{CodeAuthFailed, fmt.Sprintf("Login failed (%s).", reply)}
}

// saslClient builds the client for the configured mechanism.
func (p *prober) saslClient() sasl.Client {
	switch p.s.AuthMechanism {
	case AuthLogin:
		return &loginClient{user: p.s.Username, pass: p.s.Password}
	case AuthCRAMMD5:
		return &cramMD5Client{user: p.s.Username, pass: p.s.Password}
	}
	return sasl.NewPlainClient("", p.s.Username, p.s.Password)
}

// authenticate runs the AUTH exchange (RFC 4954). The lines carry credentials, so they
// never go into step details; only the server's final reply does.
func (p *prober) authenticate(ctx context.Context, client sasl.Client) (Reply, error) {
	mech, ir, err := client.Start()
	if err != nil {
		return Reply{}, fmt.Errorf("error starting sasl: %w", err)
	}
	line := "AUTH " + mech
	if ir != nil {
		line += " " + encodeSASL(ir)
	}
	for {
		code, msg, err := p.cmd(ctx, 0, "%s", line)
		if err != nil {
			return Reply{}, err
		}
		switch code {
		case 235:
			return parseReply(code, msg), nil
		case 334:
			if line, err = p.respond(ctx, client, msg); err != nil {
				return Reply{}, err
			}
		default:
			return parseReply(code, msg), &textproto.Error{Code: code, Msg: msg}
		}
	}
}

// respond answers a 334 challenge, cancelling the exchange ("*") when it cannot.
func (p *prober) respond(ctx context.Context, client sasl.Client, challenge64 string) (string, error) {
	challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(challenge64))
	if err == nil {
		var resp []byte
		if resp, err = client.Next(challenge); err == nil {
			return encodeSASL(resp), nil
		}
	}
	_, _, _ = p.cmd(ctx, 0, "*")
	return "", fmt.Errorf("error answering sasl challenge: %w", err)
}

// encodeSASL encodes a SASL response; an empty one is "=".
func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

var errUnexpectedChallenge = errors.New("unexpected sasl challenge")

// loginClient is AUTH LOGIN; unlike go-sasl's it does not insist on the exact prompt
// text, which servers word differently.
type loginClient struct {
	user, pass string
	step       int
}

func (c *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (c *loginClient) Next([]byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1:
		return []byte(c.user), nil
	case 2:
		return []byte(c.pass), nil
	}
	return nil, errUnexpectedChallenge
}

// cramMD5Client is AUTH CRAM-MD5 (RFC 2195), which go-sasl lacks.
type cramMD5Client struct {
	user, pass string
}

func (c *cramMD5Client) Start() (string, []byte, error) { return "CRAM-MD5", nil, nil }

func (c *cramMD5Client) Next(challenge []byte) ([]byte, error) {
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write(challenge)
	return []byte(c.user + " " + hex.EncodeToString(mac.Sum(nil))), nil
}
