package sendwerk_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
)

// baseURL is where Sendwerk serves (http://localhost:8080 with `make run`) and adminToken the
// operator's token (.data/admin-token). The tests set both to a real `sendwerk serve` they
// start (see main_test.go), so every example here runs and checks its output.
var baseURL, adminToken string

// newTenant is the operator's part: a tenant and an API key for it, made with the admin
// token. It returns the key's secret, shown only in this response.
func newTenant(ctx context.Context, name string, scopes ...sendwerk.Scope) (string, error) {
	admin, err := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(adminToken))
	if err != nil {
		return "", err
	}
	t, err := admin.CreateTenantWithResponse(ctx, sendwerk.TenantCreate{Name: name})
	if err != nil {
		return "", err
	}
	if t.JSON201 == nil {
		return "", fmt.Errorf("create tenant: %s", t.Status())
	}
	k, err := admin.CreateTenantApiKeyWithResponse(ctx, t.JSON201.Id, sendwerk.ApiKeyCreate{Name: "backend", Scopes: scopes})
	if err != nil {
		return "", err
	}
	if k.JSON201 == nil {
		return "", fmt.Errorf("create key: %s", k.Status())
	}
	return k.JSON201.Secret, nil
}

// A client for a tenant: the generated methods return typed responses, one field per
// status the operation documents.
func ExampleNewClientWithResponses() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Acme GmbH", sendwerk.ScopeRead, sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, err := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	if err != nil {
		panic(err)
	}
	me, err := client.GetMeWithResponse(ctx)
	if err != nil {
		panic(err) // the request did not complete (network, DNS, …)
	}
	if me.JSON200 == nil {
		panic(me.Status()) // the API answered with a problem: see Example_problems
	}
	fmt.Println(me.JSON200.Tenant.Name, me.JSON200.ApiKey.Scopes)
	// Output: Acme GmbH [read manage]
}

// Errors are problem documents with a stable type; validation problems name each field.
func Example_problems() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Problems GmbH", sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	r, err := client.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: "", Scopes: []sendwerk.Scope{"fly"}})
	if err != nil {
		panic(err)
	}
	switch {
	case r.JSON201 != nil:
		fmt.Println("created")
	case r.ApplicationproblemJSON422 != nil:
		p := r.ApplicationproblemJSON422
		fmt.Println(p.Status, p.Type)
		for _, e := range *p.Errors {
			fmt.Printf("  %s: %s\n", e.Field, e.Message)
		}
	case r.ApplicationproblemJSON401 != nil, r.ApplicationproblemJSON403 != nil:
		fmt.Println("check the key and its scopes")
	}
	// Output:
	// 422 urn:sendwerk:problem:validation
	//   name: minimum string length is 1
	//   scopes[0]: must be one of: messages:send, read, manage
}

// Lists are cursor-paginated: pass next_cursor back as cursor until it is absent.
func Example_pagination() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Pages GmbH", sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	for _, name := range []string{"ci", "dashboard", "mobile"} {
		if _, err := client.CreateApiKeyWithResponse(ctx, sendwerk.ApiKeyCreate{Name: name, Scopes: []sendwerk.Scope{sendwerk.ScopeRead}}); err != nil {
			panic(err)
		}
	}
	limit := 2
	params := &sendwerk.ListApiKeysParams{Limit: &limit}
	var names []string
	requests := 0
	for {
		r, err := client.ListApiKeysWithResponse(ctx, params)
		if err != nil || r.JSON200 == nil {
			panic(fmt.Sprint(err, r.Status()))
		}
		requests++
		for _, k := range r.JSON200.Items {
			names = append(names, k.Name)
		}
		if r.JSON200.NextCursor == nil {
			break // the last page; it may be empty when the one before was full
		}
		params.Cursor = r.JSON200.NextCursor
	}
	fmt.Printf("%d keys in %d requests: %s\n", len(names), requests, strings.Join(names, ", "))
	// Output: 4 keys in 3 requests: backend, ci, dashboard, mobile
}

// Test SMTP settings before saving them: a failed connection is a result with a stable code.
func ExampleClientWithResponses_TestConnectorSettingsWithResponse() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Connect GmbH", sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	r, err := client.TestConnectorSettingsWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "Office relay", Kind: sendwerk.ConnectorKindSmtp,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: closedPort(), Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: "noreply@connect.example"},
	})
	if err != nil || r.JSON200 == nil {
		panic(fmt.Sprint(err, r.Status()))
	}
	result := r.JSON200
	fmt.Println("ok:", result.Ok, "code:", *result.Code)
	for _, s := range result.Steps {
		fmt.Println(" ", s.Name, s.Status)
	}
	// Output:
	// ok: false code: tcp.refused
	//   resolve ok
	//   connect failed
	//   banner skipped
	//   ehlo skipped
	//   tls skipped
	//   auth skipped
	//   quit skipped
}

// Add a sender domain and list the DNS records its owner publishes.
func ExampleClientWithResponses_GetDomainRecordsWithResponse() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Domains GmbH", sendwerk.ScopeManage)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	d, err := client.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "bücher.example"})
	if err != nil || d.JSON201 == nil {
		panic(fmt.Sprint(err, d.Status()))
	}
	fmt.Println(d.JSON201.Domain, d.JSON201.Status)
	recs, err := client.GetDomainRecordsWithResponse(ctx, d.JSON201.Id, nil)
	if err != nil || recs.JSON200 == nil {
		panic(fmt.Sprint(err, recs.Status()))
	}
	for _, rec := range recs.JSON200.Records {
		fmt.Println(" ", rec.Purpose, rec.Requirement, rec.Type, rec.Fqdn)
	}
	// Output:
	// xn--bcher-kva.example pending
	//   ownership required TXT xn--bcher-kva.example
	//   dkim required TXT sw1._domainkey.xn--bcher-kva.example
	//   dmarc recommended TXT _dmarc.xn--bcher-kva.example
}

// Send a message with an Idempotency-Key: a retry after a timeout cannot send it twice.
func ExampleClientWithResponses_SendMessageWithResponse() {
	ctx := context.Background()
	apiKey, err := newTenant(ctx, "Send GmbH", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	// An smtp connector may send from its own default sender before any domain is verified.
	c, err := client.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{
		Name: "Office relay", Kind: sendwerk.ConnectorKindSmtp,
		Smtp:          &sendwerk.SMTPSettingsInput{Host: "127.0.0.1", Port: closedPort(), Security: sendwerk.SMTPSecurityNone},
		DefaultSender: sendwerk.Sender{Email: "noreply@send.example"},
	})
	if err != nil || c.JSON201 == nil {
		panic(fmt.Sprint(err, c.Status()))
	}
	msg := sendwerk.MessageCreate{From: sendwerk.Address("Downloads <noreply@send.example>"), To: sendwerk.To("jane@customer.example"), Subject: "Your download is ready", Text: ptr("Open the portal to download it.")}
	key := "order-4711-ready"
	first, err := client.SendMessageWithResponse(ctx, &sendwerk.SendMessageParams{IdempotencyKey: &key}, msg)
	if err != nil || first.JSON202 == nil {
		panic(fmt.Sprint(err, first.Status(), string(first.Body)))
	}
	retry, err := client.SendMessageWithResponse(ctx, &sendwerk.SendMessageParams{IdempotencyKey: &key}, msg)
	if err != nil || retry.JSON202 == nil {
		panic(fmt.Sprint(err, retry.Status()))
	}
	fmt.Println(first.StatusCode(), first.JSON202.Status, "same message:", retry.JSON202.Id == first.JSON202.Id)
	// Output: 202 queued same message: true
}

// Send a message from a verified domain with the address helpers; against a development
// server (`make run`) it lands in the inbox at /dev/inbox. This is the README's example.
func Example_send() {
	ctx := context.Background()
	apiKey := shopTenant(ctx) // a tenant with shop.test verified and a platform connector

	// readme:start
	client, err := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	if err != nil {
		panic(err)
	}
	res, err := client.SendMessageWithResponse(ctx, nil, sendwerk.MessageCreate{
		From:    sendwerk.Address("Shop <noreply@shop.test>"),
		To:      sendwerk.To("Jane Doe <jane@example.org>"),
		Bcc:     sendwerk.AddressList("orders@shop.test"),
		Subject: "Your order has shipped",
		Text:    ptr("It arrives on Tuesday."),
	})
	switch {
	case err != nil:
		panic(err) // no answer; with an Idempotency-Key (SendMessageParams) a retry cannot send twice
	case res.JSON202 != nil:
		fmt.Println("accepted:", res.JSON202.Status)
	case res.ApplicationproblemJSON422 != nil:
		for _, e := range *res.ApplicationproblemJSON422.Errors {
			fmt.Println(e.Field, e.Message)
		}
	default:
		fmt.Println("refused:", res.Status(), string(res.Body))
	}
	// readme:end
	// Output: accepted: queued
}

// shopTenant makes a tenant whose domain shop.test is verified (the development DNS
// publishes its records) and whose default connector is the platform relay.
func shopTenant(ctx context.Context) string {
	apiKey, err := newTenant(ctx, "Shop GmbH", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)
	if err != nil {
		panic(err)
	}
	client, _ := sendwerk.NewClientWithResponses(baseURL, sendwerk.WithAPIKey(apiKey))
	d, err := client.CreateDomainWithResponse(ctx, sendwerk.DomainCreate{Domain: "shop.test"})
	if err != nil || d.JSON201 == nil {
		panic(fmt.Sprint(err, d.Status()))
	}
	if chk, err := client.CheckDomainWithResponse(ctx, d.JSON201.Id); err != nil || chk.JSON200 == nil || chk.JSON200.Domain.Status != "verified" {
		panic(fmt.Sprint(err, chk.Status(), string(chk.Body)))
	}
	c, err := client.CreateConnectorWithResponse(ctx, sendwerk.ConnectorCreate{Name: "Platform", Kind: sendwerk.ConnectorKindPlatform,
		DefaultSender: sendwerk.Sender{Email: "noreply@shop.test"}})
	if err != nil || c.JSON201 == nil {
		panic(fmt.Sprint(err, c.Status()))
	}
	return apiKey
}

func ptr[T any](v T) *T { return &v }

// closedPort is a loopback port nothing listens on.
func closedPort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
