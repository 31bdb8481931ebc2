package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"time"
	"unicode/utf8"
)

// Event kinds. Each names one change; its payload is the JSON of the
// change (see the change types below) and carries every ID, timestamp and
// sequence number, so applying it reproduces the change exactly.
const (
	KindConversationCreate = "conversation.create"
	KindConversationUpdate = "conversation.update"
	KindConversationDelete = "conversation.delete"
	KindItemAdd            = "item.add"
	KindItemDelete         = "item.delete"
	KindResponsePut        = "response.put"
	KindResponseDelete     = "response.delete"
	KindAgentApply         = "agent.apply"
)

// change is the decoded payload of an event.
type change interface{ kind() string }

type conversationCreate struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Metadata  map[string]string `json:"metadata"`
}

type conversationUpdate struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
}

type conversationDelete struct {
	ID string `json:"id"`
}

type itemAdd struct {
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Role           string          `json:"role,omitempty"`
	Data           json.RawMessage `json:"data"`
	CreatedAt      time.Time       `json:"created_at"`
}

type itemDelete struct {
	ConversationID string `json:"conversation_id"`
	ID             string `json:"id"`
}

type responsePut struct {
	ID                 string          `json:"id"`
	Status             string          `json:"status"`
	Model              string          `json:"model"`
	ConversationID     string          `json:"conversation_id,omitempty"`
	PreviousResponseID string          `json:"previous_response_id,omitempty"`
	Data               json.RawMessage `json:"data"`
	KeyScope           string          `json:"key_scope,omitempty"`
	IdempotencyKey     string          `json:"idempotency_key,omitempty"`
	RequestHash        string          `json:"request_hash,omitempty"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

type responseDelete struct {
	ID        string    `json:"id"`
	UpdatedAt time.Time `json:"updated_at"`
}

type agentApply struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Hash       string          `json:"hash"`
	Definition json.RawMessage `json:"definition"`
	AppliedAt  time.Time       `json:"applied_at"`
}

func (conversationCreate) kind() string { return KindConversationCreate }
func (conversationUpdate) kind() string { return KindConversationUpdate }
func (conversationDelete) kind() string { return KindConversationDelete }
func (itemAdd) kind() string            { return KindItemAdd }
func (itemDelete) kind() string         { return KindItemDelete }
func (responsePut) kind() string        { return KindResponsePut }
func (responseDelete) kind() string     { return KindResponseDelete }
func (agentApply) kind() string         { return KindAgentApply }

// encodeChange returns the payload of c: compact JSON without HTML
// escaping, so embedded item and response JSON keeps its bytes.
func encodeChange(c change) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.kind(), err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeChange decodes and validates an event's payload. It rejects
// unknown kinds and fields, so a standby never half-applies a change it
// does not understand.
func decodeChange(ev Event) (change, error) {
	var c change
	switch ev.Kind {
	case KindConversationCreate:
		c = new(conversationCreate)
	case KindConversationUpdate:
		c = new(conversationUpdate)
	case KindConversationDelete:
		c = new(conversationDelete)
	case KindItemAdd:
		c = new(itemAdd)
	case KindItemDelete:
		c = new(itemDelete)
	case KindResponsePut:
		c = new(responsePut)
	case KindResponseDelete:
		c = new(responseDelete)
	case KindAgentApply:
		c = new(agentApply)
	default:
		return nil, invalidf("event %d: unknown kind %q", ev.Seq, ev.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, invalidf("event %d (%s): %v", ev.Seq, ev.Kind, err)
	}
	if dec.More() {
		return nil, invalidf("event %d (%s): trailing data", ev.Seq, ev.Kind)
	}
	if err := validateChange(c); err != nil {
		return nil, fmt.Errorf("event %d (%s): %w", ev.Seq, ev.Kind, err)
	}
	return c, nil
}

// ValidateEvent checks an event's header and decodes its payload without
// applying it. Replication calls it on every received event.
func ValidateEvent(ev Event) error {
	if ev.Seq < 1 {
		return invalidf("event seq %d < 1", ev.Seq)
	}
	if ev.Epoch < 1 {
		return invalidf("event %d: epoch %d < 1", ev.Seq, ev.Epoch)
	}
	_, err := decodeChange(ev)
	return err
}

func validateChange(c change) error {
	switch c := c.(type) {
	case *conversationCreate:
		if err := validID(c.ID, PrefixConversation); err != nil {
			return err
		}
		return validMetadata(c.Metadata)
	case *conversationUpdate:
		if err := validID(c.ID, PrefixConversation); err != nil {
			return err
		}
		return validMetadata(c.Metadata)
	case *conversationDelete:
		return validID(c.ID, PrefixConversation)
	case *itemAdd:
		if err := validID(c.ConversationID, PrefixConversation); err != nil {
			return err
		}
		if c.Seq < 1 {
			return invalidf("item seq %d < 1", c.Seq)
		}
		if err := validID(c.ID, ""); err != nil {
			return err
		}
		if err := validItemType(c.Type); err != nil {
			return err
		}
		return validJSON("item data", c.Data)
	case *itemDelete:
		if err := validID(c.ConversationID, PrefixConversation); err != nil {
			return err
		}
		return validID(c.ID, "")
	case *responsePut:
		if err := validID(c.ID, PrefixResponse); err != nil {
			return err
		}
		if c.Status == "" {
			return invalidf("response %s: empty status", c.ID)
		}
		return validJSON("response data", c.Data)
	case *responseDelete:
		return validID(c.ID, PrefixResponse)
	case *agentApply:
		if c.Name == "" || c.Version == "" || c.Hash == "" {
			return invalidf("agent version needs name, version and hash")
		}
		return validJSON("agent definition", c.Definition)
	}
	return invalidf("unknown change %T", c)
}

func validID(id, prefix string) error {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return invalidf("bad id %q", id)
	}
	if prefix != "" && (len(id) <= len(prefix) || id[:len(prefix)] != prefix) {
		return invalidf("id %q does not start with %q", id, prefix)
	}
	return nil
}

func validItemType(t string) error {
	switch t {
	case ItemMessage, ItemFunctionCall, ItemFunctionCallOutput:
		return nil
	}
	return invalidf("unknown item type %q", t)
}

func validJSON(what string, b json.RawMessage) error {
	if len(b) == 0 || !json.Valid(b) {
		return invalidf("%s is not valid JSON", what)
	}
	return nil
}

func validMetadata(m map[string]string) error {
	if len(m) > MaxMetadataPairs {
		return invalidf("metadata has %d pairs, at most %d", len(m), MaxMetadataPairs)
	}
	for k, v := range m {
		if k == "" || len(k) > MaxMetadataKey {
			return invalidf("metadata key %q: 1 to %d bytes", k, MaxMetadataKey)
		}
		if len(v) > MaxMetadataValue {
			return invalidf("metadata %q: value longer than %d bytes", k, MaxMetadataValue)
		}
	}
	return nil
}

// compactJSON validates b and returns it compacted, so that the bytes the
// primary keeps are the bytes every standby keeps.
func compactJSON(what string, b json.RawMessage) (json.RawMessage, error) {
	if err := validJSON(what, b); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, invalidf("%s: %v", what, err)
	}
	return buf.Bytes(), nil
}

func cloneMetadata(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
