package event

import (
	"encoding/json"
	"time"
)

// Type names an event: `resource.what_happened`.
type Type string

// Event types. Each has exactly one payload type below, and one schema in openapi.yaml.
const (
	MessageQueued     Type = "message.queued"
	MessageDeferred   Type = "message.deferred"
	MessageDelivered  Type = "message.delivered"
	MessageFailed     Type = "message.failed"
	MessageCancelled  Type = "message.cancelled"
	MessageBounced    Type = "message.bounced"
	MessageComplained Type = "message.complained"
	MessageSuppressed Type = "message.suppressed"

	DomainVerified Type = "domain.verified"
	DomainAtRisk   Type = "domain.at_risk"
	DomainRevoked  Type = "domain.revoked"
	DomainRestored Type = "domain.restored"

	ConnectorPaused     Type = "connector.paused"
	ConnectorResumed    Type = "connector.resumed"
	ConnectorTestFailed Type = "connector.test_failed"

	QuotaThreshold Type = "quota.threshold"

	WebhookDisabled Type = "webhook.disabled"
	WebhookTest     Type = "webhook.test"

	PlatformChanged Type = "platform.changed"
)

// registry maps each type to a fresh payload, for decoding stored events.
var registry = map[Type]func() Data{
	MessageQueued:       func() Data { return &MessageQueuedData{} },
	MessageDeferred:     func() Data { return &MessageDeferredData{} },
	MessageDelivered:    func() Data { return &MessageDeliveredData{} },
	MessageFailed:       func() Data { return &MessageFailedData{} },
	MessageCancelled:    func() Data { return &MessageCancelledData{} },
	MessageBounced:      func() Data { return &MessageBouncedData{} },
	MessageComplained:   func() Data { return &MessageComplainedData{} },
	MessageSuppressed:   func() Data { return &MessageSuppressedData{} },
	DomainVerified:      func() Data { return &DomainVerifiedData{} },
	DomainAtRisk:        func() Data { return &DomainAtRiskData{} },
	DomainRevoked:       func() Data { return &DomainRevokedData{} },
	DomainRestored:      func() Data { return &DomainRestoredData{} },
	ConnectorPaused:     func() Data { return &ConnectorPausedData{} },
	ConnectorResumed:    func() Data { return &ConnectorResumedData{} },
	ConnectorTestFailed: func() Data { return &ConnectorTestFailedData{} },
	QuotaThreshold:      func() Data { return &QuotaThresholdData{} },
	WebhookDisabled:     func() Data { return &WebhookDisabledData{} },
	WebhookTest:         func() Data { return &WebhookTestData{} },
	PlatformChanged:     func() Data { return &PlatformChangedData{} },
}

// Types lists every event type, for validation of filters and webhook subscriptions.
func Types() []Type {
	out := make([]Type, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// Known reports whether t is an event type.
func Known(t Type) bool {
	_, ok := registry[t]
	return ok
}

// decode turns a stored payload back into its type; an unknown type (an event written by
// a newer version) keeps its JSON.
func decode(t Type, b []byte) (Data, error) {
	f, ok := registry[t]
	if !ok {
		return Raw{T: t, JSON: b}, nil
	}
	d := f()
	if err := json.Unmarshal(b, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Raw is a payload of a type this version does not know.
type Raw struct {
	T    Type
	JSON json.RawMessage
}

func (r Raw) EventType() Type              { return r.T }
func (r Raw) MarshalJSON() ([]byte, error) { return r.JSON, nil }

// Reply is an SMTP server's answer.
type Reply struct {
	Code         int    `json:"code"`
	EnhancedCode string `json:"enhanced_code,omitempty"`
	Text         string `json:"text"`
}

// MessageInfo is in every message event, so a receiver needs no lookup to file it: who sent
// it to whom, and the integrator's own tags and metadata.
type MessageInfo struct {
	From            string            `json:"from"`
	Recipients      []string          `json:"recipients"`
	MessageIDHeader string            `json:"message_id_header"`
	Tags            []string          `json:"tags"`
	Metadata        map[string]string `json:"metadata"`
}

// MessageQueuedData is the payload of an event when the message was accepted and waits for delivery.
type MessageQueuedData struct {
	MessageInfo
	Source    string     `json:"source"`
	SizeBytes int        `json:"size_bytes"`
	SendAt    *time.Time `json:"send_at"`
}

// MessageDeferredData is the payload of an event when an attempt met a temporary failure; another follows at NextAttemptAt.
type MessageDeferredData struct {
	MessageInfo
	Attempt       int       `json:"attempt"`
	Reason        string    `json:"reason"`
	Reply         *Reply    `json:"reply"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

// MessageDeliveredData is the payload of an event when the upstream server accepted the message.
type MessageDeliveredData struct {
	MessageInfo
	Attempt int    `json:"attempt"`
	Reply   *Reply `json:"reply"`
	QueueID string `json:"queue_id"`
}

// MessageFailedData is the payload of an event when the message will not be delivered (permanent failure, or retries spent).
type MessageFailedData struct {
	MessageInfo
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason"`
	Reply   *Reply `json:"reply"`
}

// MessageCancelledData is the payload of an event when the message was cancelled before delivery.
type MessageCancelledData struct {
	MessageInfo
	Reason string `json:"reason"`
}

// MessageBouncedData is the payload of an event when a delivery status notification reported a recipient undeliverable
// after the upstream accepted the message.
type MessageBouncedData struct {
	MessageInfo
	Recipient      string `json:"recipient"`
	Action         string `json:"action"`
	Status         string `json:"status"`
	DiagnosticCode string `json:"diagnostic_code"`
	Permanent      bool   `json:"permanent"`
}

// MessageComplainedData is the payload of an event when a recipient reported the message as spam (feedback loop).
type MessageComplainedData struct {
	MessageInfo
	Recipient    string `json:"recipient"`
	FeedbackType string `json:"feedback_type"`
}

// SuppressedRecipient is one recipient left out because of the suppression list.
type SuppressedRecipient struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// MessageSuppressedData is the payload of an event when recipients were not sent to because they are suppressed.
type MessageSuppressedData struct {
	MessageInfo
	Suppressed []SuppressedRecipient `json:"suppressed"`
}

func (MessageQueuedData) EventType() Type     { return MessageQueued }
func (MessageDeferredData) EventType() Type   { return MessageDeferred }
func (MessageDeliveredData) EventType() Type  { return MessageDelivered }
func (MessageFailedData) EventType() Type     { return MessageFailed }
func (MessageCancelledData) EventType() Type  { return MessageCancelled }
func (MessageBouncedData) EventType() Type    { return MessageBounced }
func (MessageComplainedData) EventType() Type { return MessageComplained }
func (MessageSuppressedData) EventType() Type { return MessageSuppressed }

// DomainChange is a sender domain's status change, the payload of every domain event.
type DomainChange struct {
	Domain     string `json:"domain"`
	FromStatus string `json:"from_status"`
	ToStatus   string `json:"to_status"`
	Code       string `json:"code"`
	Reason     string `json:"reason"`
	CheckID    string `json:"check_id"`
}

// DomainVerifiedData is the payload of an event when a pending domain passed its checks and may send.
type DomainVerifiedData struct{ DomainChange }

// DomainAtRiskData is the payload of an event when a verified domain's records fail; it keeps sending during the grace period.
type DomainAtRiskData struct{ DomainChange }

// DomainRevokedData is the payload of an event when the domain lost its send rights.
type DomainRevokedData struct{ DomainChange }

// DomainRestoredData is the payload of an event when an at-risk or revoked domain passes its checks again.
type DomainRestoredData struct{ DomainChange }

func (DomainVerifiedData) EventType() Type { return DomainVerified }
func (DomainAtRiskData) EventType() Type   { return DomainAtRisk }
func (DomainRevokedData) EventType() Type  { return DomainRevoked }
func (DomainRestoredData) EventType() Type { return DomainRestored }

// DomainChangeData returns the payload for a change to toStatus (from fromStatus), or nil
// when the change is not reported (e.g. back to pending).
func DomainChangeData(c DomainChange) Data {
	switch {
	case c.ToStatus == "verified" && (c.FromStatus == "at_risk" || c.FromStatus == "revoked"):
		return DomainRestoredData{c}
	case c.ToStatus == "verified":
		return DomainVerifiedData{c}
	case c.ToStatus == "at_risk":
		return DomainAtRiskData{c}
	case c.ToStatus == "revoked":
		return DomainRevokedData{c}
	}
	return nil
}

// ConnectorPausedData is the payload of an event when the connector stopped sending; queued messages wait.
type ConnectorPausedData struct {
	Name string `json:"name"`
	// Reason is a code: "manual" (paused through the API), "auth.failed", "tls.failed", …
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	LastReply *Reply `json:"last_reply"`
}

// ConnectorResumedData is the payload of an event when the connector sends again.
type ConnectorResumedData struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ConnectorTestFailedData is the payload of an event when a connection test of a stored connector failed.
type ConnectorTestFailedData struct {
	Name    string `json:"name"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
}

func (ConnectorPausedData) EventType() Type     { return ConnectorPaused }
func (ConnectorResumedData) EventType() Type    { return ConnectorResumed }
func (ConnectorTestFailedData) EventType() Type { return ConnectorTestFailed }

// QuotaThresholdData is the payload of an event when usage of a monthly quota reached a threshold (80, 90 or 100 %).
type QuotaThresholdData struct {
	// Scope is "connector" (ConnectorID names it) or "tenant".
	Scope            string    `json:"scope"`
	Period           string    `json:"period"`
	ThresholdPercent int       `json:"threshold_percent"`
	Limit            int64     `json:"limit"`
	Used             int64     `json:"used"`
	ResetsAt         time.Time `json:"resets_at"`
}

func (QuotaThresholdData) EventType() Type { return QuotaThreshold }

// WebhookDisabledData is the payload of an event when an endpoint failed for too long and gets no more events until it is
// enabled again.
type WebhookDisabledData struct {
	URL          string    `json:"url"`
	Reason       string    `json:"reason"`
	FailingSince time.Time `json:"failing_since"`
}

// WebhookTestData is sent by POST /v1/webhooks/{id}/test; it is not kept in the feed.
type WebhookTestData struct {
	Message string `json:"message"`
}

func (WebhookDisabledData) EventType() Type { return WebhookDisabled }
func (WebhookTestData) EventType() Type     { return WebhookTest }

// PlatformFacts are what the operator publishes for customers' firewalls and DNS.
type PlatformFacts struct {
	EgressNetworks []string    `json:"egress_networks"`
	SPFInclude     string      `json:"spf_include"`
	RelayHosts     []RelayHost `json:"relay_hosts"`
	BounceDomain   string      `json:"bounce_domain"`
}

// RelayHost is a host name and port of the SMTP relay, with the port's security.
type RelayHost struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Security string `json:"security"`
}

// PlatformChangedData is the payload of an event when the operator changed what customers must allow or publish.
type PlatformChangedData struct {
	Previous PlatformFacts `json:"previous"`
	Current  PlatformFacts `json:"current"`
	// Changed names the fields that differ, e.g. ["egress_networks"].
	Changed []string `json:"changed"`
}

func (PlatformChangedData) EventType() Type { return PlatformChanged }
