package sendwerk_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// readme:webhook-handler:start

// webhookHandler receives Sendwerk's webhooks: it verifies the signature over the raw body,
// answers 204 at once, then hands the typed event on. Anything but 2xx is retried, so
// handle each event id once (deliveries are at least once).
func webhookHandler(secret string, handle func(any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		ev, err := sendwerk.VerifyWebhook(body, r.Header, secret)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		typed, err := ev.ValueByDiscriminator() // e.g. sendwerk.MessageDeliveredEvent
		if err == nil {
			handle(typed)
		}
	}
}

// readme:webhook-handler:end

// A webhook endpoint in Go: register it, send it a test event, and switch on the event's type.
func ExampleVerifyWebhook() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Hooks GmbH", sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	var secret string
	got := make(chan any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		webhookHandler(secret, func(e any) { got <- e })(w, r)
	}))
	defer srv.Close()
	hook, err := client.CreateWebhookWithResponse(ctx, sendwerk.WebhookCreate{Url: srv.URL + "/hooks/sendwerk"})
	if err != nil || hook.JSON201 == nil {
		panic(fmt.Sprint(err, hook.Status()))
	}
	secret = hook.JSON201.Secret // shown only now: keep it in your secret store
	test, err := client.TestWebhookWithResponse(ctx, hook.JSON201.Id)
	if err != nil || test.JSON200 == nil {
		panic(fmt.Sprint(err, test.Status()))
	}
	fmt.Println("endpoint answered", test.JSON200.StatusCode)
	switch e := (<-got).(type) {
	case sendwerk.WebhookTestEvent:
		fmt.Println(e.Type, e.Data.Message)
	case sendwerk.MessageDeliveredEvent:
		fmt.Println(e.MessageId, "delivered")
	}
	// Output:
	// endpoint answered 204
	// webhook.test This is a test event from Sendwerk.
}

// TestReadmeGoReceiver: the README's Go receiver is this file's webhookHandler, verbatim.
func TestReadmeGoReceiver(t *testing.T) {
	src, err := os.ReadFile("example_webhook_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(src), "// readme:webhook-handler:start\n\n")
	handler, _, _ := strings.Cut(rest, "\n// readme:webhook-handler:end")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+handler+"```") {
		t.Fatalf("README.md's Go receiver differs from webhookHandler in example_webhook_test.go:\n%s", handler)
	}
}
