package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

const sender = "noreply@acme.example"

// setupTenant creates a tenant, an API key and an smtp connector to the sink.
func setupTenant(ctx context.Context, baseURL, adminToken string, sinkPort int) (string, error) {
	admin, err := newClient(baseURL, adminToken)
	if err != nil {
		return "", err
	}
	tr, err := admin.CreateTenantWithResponse(ctx, sendwerk.CreateTenantJSONRequestBody{Name: "Chaos"})
	if err != nil || tr.JSON201 == nil {
		return "", fmt.Errorf("create tenant: %v %s", err, body(tr))
	}
	kr, err := admin.CreateTenantApiKeyWithResponse(ctx, tr.JSON201.Id, sendwerk.ApiKeyCreate{
		Name: "chaos", Scopes: []sendwerk.Scope{sendwerk.ScopeManage, sendwerk.ScopeMessagesSend},
	})
	if err != nil || kr.JSON201 == nil {
		return "", fmt.Errorf("create api key: %v %s", err, body(kr))
	}
	c, err := newClient(baseURL, kr.JSON201.Secret)
	if err != nil {
		return "", err
	}
	cr, err := c.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "sink", Kind: sendwerk.ConnectorKindSmtp,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: sinkPort, Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: sender},
	})
	if err != nil || cr.JSON201 == nil {
		return "", fmt.Errorf("create connector: %v %s", err, body(cr))
	}
	return kr.JSON201.Secret, nil
}

func body(r interface{ StatusCode() int }) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("HTTP %d", r.StatusCode())
}

func newClient(baseURL, token string) (*sendwerk.ClientWithResponses, error) {
	return sendwerk.NewClientWithResponses(baseURL, sendwerk.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
}

// loader submits messages with Idempotency-Keys the way a careful client does: whatever
// goes wrong (connection refused, reset, 5xx, 503), it sends the same request with the
// same key again until it gets an answer, so a message is accepted at most once.
type loader struct {
	key     string
	prefix  string
	targets func() []string // base URLs of the servers to try, in turn
	client  *http.Client

	mu       sync.Mutex
	accepted map[string]string // idempotency key → message id
	refused  []string
	attempts atomic.Int64
	codes    map[int]int
}

func newLoader(key, prefix string, targets func() []string) *loader {
	return &loader{key: key, prefix: prefix, targets: targets, client: &http.Client{Timeout: 30 * time.Second},
		accepted: map[string]string{}, codes: map[int]int{}}
}

// run submits n messages on conc goroutines; every message is retried until deadline.
func (l *loader) run(ctx context.Context, n, conc int, deadline time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				l.submit(ctx, int(i), time.Now().Add(deadline))
			}
		}()
	}
	wg.Wait()
}

func (l *loader) submit(ctx context.Context, i int, deadline time.Time) {
	idem := fmt.Sprintf("%s-%05d", l.prefix, i)
	payload, _ := json.Marshal(map[string]any{
		"from": sender, "to": []string{fmt.Sprintf("user%d@customer.example", i)},
		"subject": "Reset your password", "text": "Open the link to reset your password.",
	})
	for try := 0; time.Now().Before(deadline) && ctx.Err() == nil; try++ {
		targets := l.targets()
		base := targets[try%len(targets)]
		code, b, err := l.post(ctx, base, idem, payload)
		l.attempts.Add(1)
		l.mu.Lock()
		l.codes[code]++
		l.mu.Unlock()
		switch {
		case err == nil && code == http.StatusAccepted:
			var acc struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(b, &acc) == nil && acc.ID != "" {
				l.mu.Lock()
				l.accepted[idem] = acc.ID
				l.mu.Unlock()
				return
			}
		case err == nil && code >= 400 && code < 500 && code != http.StatusConflict && code != http.StatusTooManyRequests:
			l.mu.Lock()
			l.refused = append(l.refused, fmt.Sprintf("%s: HTTP %d %s", idem, code, b))
			l.mu.Unlock()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.mu.Lock()
	l.refused = append(l.refused, idem+": no answer before the deadline")
	l.mu.Unlock()
}

func (l *loader) post(ctx context.Context, base, idem string, payload []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages", bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (l *loader) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.accepted))
	for _, id := range l.accepted {
		out = append(out, id)
	}
	return out
}
