package message

import (
	"errors"
	"fmt"
	"time"

	"github.com/sendwerk/sendwerk/internal/validate"
)

// Refusals: expected outcomes of a submission, as types carrying what a front door needs.
// httpapi turns them into problem documents and relay into SMTP replies, each in one place;
// this package knows neither HTTP statuses nor reply codes. A refusal that names an input
// field implements FieldErrors; validate.Error is the general one.

// AddressRole says whether a refused address is a sender or a recipient.
type AddressRole int

// Roles of an address.
const (
	RoleSender AddressRole = iota
	RoleRecipient
)

// SenderRefusedError is an address the connector's sender rule refuses, wherever it
// appears: the From field, the envelope sender, a Sender header field.
type SenderRefusedError struct {
	// Field names where the address was given: "from.email", "envelope_from",
	// "header.from", "header.sender".
	Field   string
	Address string
	// Reason is the rule broken, in words for the customer.
	Reason string
}

func (e *SenderRefusedError) Error() string {
	return fmt.Sprintf("sender %s is not allowed: %s", e.Address, e.Reason)
}

// FieldErrors names the field.
func (e *SenderRefusedError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: e.Field, Message: e.Reason}}
}

// BadAddressError is an address that is not a valid e-mail address.
type BadAddressError struct {
	Field   string
	Role    AddressRole
	Address string
	Reason  string
}

func (e *BadAddressError) Error() string {
	return fmt.Sprintf("%s: %q %s", e.Field, e.Address, e.Reason)
}

// FieldErrors names the field.
func (e *BadAddressError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: e.Field, Message: e.Reason}}
}

// TooLargeError is a message over the size limit.
type TooLargeError struct {
	Field       string
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the message is %d bytes; at most %d are accepted", e.Size, e.Limit)
}

// FieldErrors names the field.
func (e *TooLargeError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: e.Field, Message: e.Error()}}
}

// TooManyRecipientsError is a message with more recipients than one message may have.
type TooManyRecipientsError struct {
	Field        string
	Count, Limit int
}

func (e *TooManyRecipientsError) Error() string {
	return fmt.Sprintf("a message may have at most %d recipients, not %d", e.Limit, e.Count)
}

// FieldErrors names the field.
func (e *TooManyRecipientsError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: e.Field, Message: e.Error()}}
}

// MessageFormatError is a submitted MIME message whose header breaks RFC 5322 in a way that
// matters (no From field, two of them, an unparseable header).
type MessageFormatError struct {
	Reason string
}

func (e *MessageFormatError) Error() string { return e.Reason }

// FieldErrors names the message.
func (e *MessageFormatError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: "data", Message: e.Reason}}
}

// ConnectorNotFoundError is a submission naming no connector, or one the tenant does not
// have (ID empty: the tenant has none at all).
type ConnectorNotFoundError struct {
	ID string
}

func (e *ConnectorNotFoundError) Error() string {
	if e.ID == "" {
		return "is required: the tenant has no connector yet (create one with POST /v1/connectors)"
	}
	return fmt.Sprintf("no connector with id %q", e.ID)
}

// FieldErrors names the field.
func (e *ConnectorNotFoundError) FieldErrors() []validate.FieldError {
	return []validate.FieldError{{Field: "connector_id", Message: e.Error()}}
}

// ConnectorPausedError is a submission through a paused connector.
type ConnectorPausedError struct {
	ConnectorID string
}

func (e *ConnectorPausedError) Error() string { return "connector " + e.ConnectorID + " is paused" }

// Is makes errors.Is(err, ErrConnectorPaused) hold.
func (e *ConnectorPausedError) Is(target error) bool { return target == ErrConnectorPaused }

// IdempotencyConflictError is an Idempotency-Key reused with another request within the
// window.
type IdempotencyConflictError struct {
	Key string
}

func (e *IdempotencyConflictError) Error() string {
	return "the Idempotency-Key was used with a different request"
}

// Is makes errors.Is(err, ErrIdempotencyReuse) hold.
func (e *IdempotencyConflictError) Is(target error) bool { return target == ErrIdempotencyReuse }

// RetryAfter is how long until the limit resets, at least a second.
func (e *LimitError) RetryAfter(now time.Time) time.Duration {
	return max(e.Reset.Sub(now).Round(time.Second), time.Second)
}

// FieldErrors returns the fields a refusal names, or nil when it names none.
func FieldErrors(err error) []validate.FieldError {
	var fe interface{ FieldErrors() []validate.FieldError }
	if errors.As(err, &fe) {
		return fe.FieldErrors()
	}
	var v *validate.Error
	if errors.As(err, &v) {
		return v.Fields
	}
	return nil
}
