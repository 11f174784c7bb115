package sendwerk

import (
	"context"
	"net/http"
)

// The helpers below are written by hand beside the generated client: they make the
// spec's unions (an address is a string or an object; `to` is one address or a list)
// read like the JSON they send.

// WithAPIKey sends `Authorization: Bearer <key>` on every request: a tenant's API key
// (sw_…), or the operator's admin token for /v1/tenants.
func WithAPIKey(key string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	})
}

// Address is an address as a string: "jane@example.com", or with a display name
// "Jane Doe <jane@example.com>" (quote names with commas: `"Doe, Jane" <jane@example.com>`).
func Address(s string) EmailAddress {
	var e EmailAddress
	_ = e.FromEmailAddress0(s) // a string always marshals
	return e
}

// NamedAddress is an address with a display name, sent as {"email", "name"}: no quoting
// rules to think of, whatever the name contains.
func NamedAddress(name, email string) EmailAddress {
	var e EmailAddress
	_ = e.FromSender(Sender{Email: email, Name: &name})
	return e
}

// To is the `to` of a message: To("jane@example.com", "Max <max@example.com>").
func To(addrs ...string) *MessageCreate_To {
	list := AddressList(addrs...)
	var to MessageCreate_To
	_ = to.FromMessageCreateTo1(*list)
	return &to
}

// ToAddresses is To for addresses built with Address or NamedAddress.
func ToAddresses(addrs ...EmailAddress) *MessageCreate_To {
	var to MessageCreate_To
	_ = to.FromMessageCreateTo1(addrs)
	return &to
}

// AddressList is a cc, bcc or reply_to list: Cc: sendwerk.AddressList("ops@example.com").
func AddressList(addrs ...string) *[]EmailAddress {
	out := make([]EmailAddress, len(addrs))
	for i, a := range addrs {
		out[i] = Address(a)
	}
	return &out
}
