package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sendwerk/sendwerk/internal/delivery"
)

// BodyExcerptBytes is how much of a receiver's answer is logged.
const BodyExcerptBytes = 1024

// Answer is what one attempt got: the receiver's HTTP answer, or why there was none.
type Answer struct {
	AttemptedAt time.Time
	StatusCode  int // 0: no HTTP answer
	Latency     time.Duration
	Headers     map[string]string
	Body        string // the first KiB
	Error       string
}

// OK reports a 2xx answer, the only success.
func (a *Answer) OK() bool { return a.StatusCode >= 200 && a.StatusCode < 300 }

type sender struct {
	client *http.Client
}

func newSender(cfg *Config) *sender {
	var allow = cfg.AllowAddrFunc
	if cfg.AllowPrivateAddresses {
		allow = nil
	}
	dialer := delivery.GuardDialer(&net.Dialer{Timeout: cfg.Timeout}, allow)
	tr := &http.Transport{
		DialContext: dialer.DialContext, Proxy: nil, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
	}
	return &sender{client: &http.Client{
		Transport: tr, Timeout: cfg.Timeout,
		// A redirect is an answer, not an instruction: following it could lead anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// sign returns the webhook-signature header value: one v1 signature per secret, space-separated.
func sign(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		wh, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			return "", fmt.Errorf("error reading webhook secret: %w", err)
		}
		sig, err := wh.Sign(msgID, ts, body)
		if err != nil {
			return "", fmt.Errorf("error signing webhook: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// post sends one signed request and describes the answer; it never returns an error, as
// every failure is an answer to log.
func (s *sender) post(ctx context.Context, url string, secrets []string, msgID string, body []byte, now time.Time) *Answer {
	a := &Answer{AttemptedAt: now.UTC()}
	sig, err := sign(secrets, msgID, now, body)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.Error = "invalid URL"
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Sendwerk-Webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, msgID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		a.Latency, a.Error = time.Since(start), describe(err)
		return a
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, BodyExcerptBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	a.Latency, a.StatusCode, a.Body = time.Since(start), resp.StatusCode, strings.ToValidUTF8(string(excerpt), "\uFFFD")
	a.Headers = make(map[string]string, len(resp.Header))
	for k, v := range resp.Header {
		a.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	if !a.OK() {
		a.Error = fmt.Sprintf("the endpoint answered %d", resp.StatusCode)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			a.Error += " (redirects are not followed)"
		}
	}
	return a
}

// describe says why a request got no answer, without repeating the URL.
func describe(err error) string {
	var ae *delivery.AddressError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		return ae.Error()
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timed out waiting for the endpoint"
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap() // *url.Error: drop "Post \"<url>\":"
	}
	return err.Error()
}
