package sendwerk

import (
	"errors"
	"fmt"
	"net/http"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// ErrWebhookSignature is returned by VerifyWebhook when a request was not signed with the
// secret (or its timestamp is more than five minutes off): answer it 400 or 401 and ignore it.
var ErrWebhookSignature = errors.New("sendwerk: webhook signature does not verify")

// VerifyWebhook checks a webhook request's Standard Webhooks signature (the headers
// webhook-id, webhook-timestamp and webhook-signature) over the raw body with the endpoint's
// secret ("whsec_…"), and returns the event. Pass the body exactly as received, before any
// JSON decoding. During a secret rotation a request carries two signatures and verifies with
// either secret.
//
//	body, _ := io.ReadAll(r.Body)
//	ev, err := sendwerk.VerifyWebhook(body, r.Header, secret)
//	if err != nil { http.Error(w, "bad signature", 400); return }
//	switch e, _ := ev.ValueByDiscriminator(); e := e.(type) {
//	case sendwerk.MessageDeliveredEvent: …
//	}
//
// Deliveries are at least once and unordered: deduplicate by ev's id (the webhook-id
// header) and order one resource's events by their sequence.
func VerifyWebhook(payload []byte, headers http.Header, secret string) (*Event, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("sendwerk: reading webhook secret: %w", err)
	}
	if err := wh.Verify(payload, headers); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWebhookSignature, err)
	}
	var ev Event
	if err := ev.UnmarshalJSON(payload); err != nil {
		return nil, fmt.Errorf("sendwerk: decoding webhook event: %w", err)
	}
	return &ev, nil
}
