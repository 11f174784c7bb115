package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// submitter posts messages over keep-alive HTTP connections, as a platform would.
type submitter struct {
	base, auth string
	client     *http.Client
	text       string
}

type accepted struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
}

func newSubmitter(baseURL, key string, size int) *submitter {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &submitter{base: baseURL, auth: "Bearer " + key, client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}, text: bodyText(size)}
}

// bodyText is size bytes of plain text in 72-character lines, like a notification e-mail.
func bodyText(size int) string {
	const words = "Your download is ready. Open the link below within seven days to fetch the report you asked for. "
	var b strings.Builder
	for b.Len() < size {
		line := strings.Repeat(words, 2)[:71]
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()[:size]
}

type messageJSON struct {
	From    string     `json:"from"`
	To      []string   `json:"to"`
	Subject string     `json:"subject"`
	Text    string     `json:"text"`
	Tags    []string   `json:"tags,omitempty"`
	SendAt  *time.Time `json:"send_at,omitempty"`
}

func (s *submitter) message(from string, sendAt *time.Time) messageJSON {
	return messageJSON{From: from, To: []string{recipient}, Subject: "Your report is ready", Text: s.text, Tags: []string{"bench"}, SendAt: sendAt}
}

// body is the JSON of one message.
func (s *submitter) body(from string, sendAt *time.Time) []byte {
	b, _ := json.Marshal(s.message(from, sendAt))
	return b
}

// batchBody is the JSON of a batch of n identical messages.
func (s *submitter) batchBody(from string, sendAt *time.Time, n int) []byte {
	msgs := make([]messageJSON, n)
	for i := range msgs {
		msgs[i] = s.message(from, sendAt)
	}
	b, _ := json.Marshal(map[string]any{"messages": msgs})
	return b
}

func (s *submitter) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// submit posts one message; parse decodes the answer (the load phases that only count skip it).
func (s *submitter) submit(ctx context.Context, body []byte, parse bool) (accepted, error) {
	var acc accepted
	code, b, err := s.post(ctx, "/v1/messages", body)
	if err != nil {
		return acc, err
	}
	if code != http.StatusAccepted {
		return acc, fmt.Errorf("POST /v1/messages: HTTP %d %s", code, truncate(b))
	}
	if parse {
		if err := json.Unmarshal(b, &acc); err != nil {
			return acc, fmt.Errorf("POST /v1/messages: %w", err)
		}
	}
	return acc, nil
}

// submitBatch posts a batch and returns how many messages were accepted.
func (s *submitter) submitBatch(ctx context.Context, body []byte) (int, error) {
	code, b, err := s.post(ctx, "/v1/messages/batch", body)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/messages/batch: HTTP %d %s", code, truncate(b))
	}
	var r struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, err
	}
	if r.Rejected > 0 {
		return r.Accepted, fmt.Errorf("batch: %d messages rejected: %s", r.Rejected, truncate(b))
	}
	return r.Accepted, nil
}

func truncate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

// loadResult is a closed-loop run: how many operations finished in the window and how long
// each took.
type loadResult struct {
	Ops       int
	Units     int // messages (a batch counts its accepted messages)
	Seconds   float64
	Latencies []time.Duration
	Errors    int
	FirstErr  string
}

// closedLoop runs conc workers calling op back to back: warmup first (not counted), then
// a measured window of d. op returns how many messages it handled.
func closedLoop(ctx context.Context, conc int, warmup, d time.Duration, op func(context.Context) (int, error)) loadResult {
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+d)
	var mu sync.Mutex
	res := loadResult{Seconds: d.Seconds()}
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lats []time.Duration
			ops, units, errs := 0, 0, 0
			first := ""
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(until) {
					break
				}
				n, err := op(ctx)
				t1 := time.Now()
				if t0.Before(from) || t1.After(until) {
					continue
				}
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				ops++
				units += n
				lats = append(lats, t1.Sub(t0))
			}
			mu.Lock()
			res.Ops += ops
			res.Units += units
			res.Errors += errs
			res.Latencies = append(res.Latencies, lats...)
			if res.FirstErr == "" {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// sent is one message handed over, with when the hand-over started.
type sent struct {
	messageID string
	at        time.Time
	accepted  time.Duration // until the 202 (or SMTP 250)
}

// countedLoad submits n messages with conc workers sharing the count, and returns them and
// when the last one was accepted.
func countedLoad(ctx context.Context, conc, n int, op func(ctx context.Context, i int) (string, error)) ([]sent, time.Time, error) {
	var next atomic.Int64
	var mu sync.Mutex
	out := make([]sent, 0, n)
	var last time.Time
	var firstErr error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]sent, 0, n/conc+1)
			for ctx.Err() == nil {
				i := int(next.Add(1))
				if i > n {
					break
				}
				t0 := time.Now()
				id, err := op(ctx, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, sent{messageID: id, at: t0})
			}
			mu.Lock()
			out = append(out, local...)
			if t := time.Now(); t.After(last) {
				last = t
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, last, firstErr
}

// openLoop starts op at a steady rate for d, whatever the answers' pace, and returns what
// it handed over.
func openLoop(ctx context.Context, rate int, d time.Duration, op func(ctx context.Context, i int) (string, error)) ([]sent, error) {
	interval := time.Second / time.Duration(rate)
	total := int(d.Seconds() * float64(rate))
	var mu sync.Mutex
	out := make([]sent, 0, total)
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			id, err := op(ctx, i)
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out = append(out, sent{messageID: id, at: t0, accepted: took})
		}()
	}
	wg.Wait()
	return out, firstErr
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type latencySummary struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
}

func summarize(lats []time.Duration) latencySummary {
	s := slices.Clone(lats)
	slices.Sort(s)
	if len(s) == 0 {
		return latencySummary{}
	}
	return latencySummary{N: len(s), P50ms: ms(percentile(s, 0.50)), P99ms: ms(percentile(s, 0.99)), Maxms: ms(s[len(s)-1])}
}
