package store

import (
	"encoding/json"
	"time"
)

// Role is the role of a region's state.
type Role string

// Roles of a store. A fresh store is a standby of epoch 0; Promote makes it
// primary.
const (
	// RolePrimary accepts writes of its epoch.
	RolePrimary Role = "primary"
	// RoleStandby applies the primary's journal and refuses writes.
	RoleStandby Role = "standby"
	// RoleFenced is a former primary that must not write; it becomes a
	// standby again through Rejoin.
	RoleFenced Role = "fenced"
)

// Item types (OpenAI conversation items).
const (
	ItemMessage            = "message"
	ItemFunctionCall       = "function_call"
	ItemFunctionCallOutput = "function_call_output"
)

// Limits mirrored from the OpenAI Conversations API.
const (
	// MaxMetadataPairs is the most metadata pairs a conversation may hold.
	MaxMetadataPairs = 16
	// MaxMetadataKey is the longest metadata key, in bytes.
	MaxMetadataKey = 64
	// MaxMetadataValue is the longest metadata value, in bytes.
	MaxMetadataValue = 512
	// DefaultListLimit is the page size when ListOptions.Limit is 0.
	DefaultListLimit = 20
	// MaxListLimit is the largest page size.
	MaxListLimit = 100
)

// Conversation is an OpenAI conversation ("conv_…").
type Conversation struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	Metadata  map[string]string `json:"metadata"`
	Deleted   bool              `json:"deleted,omitempty"`
}

// Item is one conversation item. Items are append-only; Seq numbers them
// 1, 2, 3… within their conversation, gap-free.
type Item struct {
	ConversationID string `json:"conversation_id"`
	// Seq is assigned by the store on append.
	Seq int64 `json:"seq"`
	// ID is "msg_…", "fc_…", "fco_…"; generated from Type when empty.
	ID string `json:"id"`
	// Type is message, function_call or function_call_output.
	Type string `json:"type"`
	// Role is user, assistant, system or developer for messages, empty
	// otherwise.
	Role string `json:"role,omitempty"`
	// Data is the item's full JSON as the API returns it.
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	Deleted   bool            `json:"deleted,omitempty"`
}

// Response is a stored OpenAI response ("resp_…").
type Response struct {
	ID                 string `json:"id"`
	Status             string `json:"status"`
	Model              string `json:"model"`
	ConversationID     string `json:"conversation_id,omitempty"`
	PreviousResponseID string `json:"previous_response_id,omitempty"`
	// Data is the response JSON, output and usage included.
	Data json.RawMessage `json:"data"`
	// KeyScope identifies the API key the idempotency key belongs to (for
	// example a hash of it): keys are unique per scope.
	KeyScope string `json:"key_scope,omitempty"`
	// IdempotencyKey is the client's Idempotency-Key header, if any.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// RequestHash identifies the request body. Reusing an idempotency key
	// with another hash is ErrConflict.
	RequestHash string    `json:"request_hash,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Deleted     bool      `json:"deleted,omitempty"`
}

// AgentVersion is an agent definition applied to this region.
type AgentVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Hash is the content hash of Definition; applying the same name and
	// version with another hash is ErrConflict.
	Hash       string          `json:"hash"`
	Definition json.RawMessage `json:"definition"`
	AppliedAt  time.Time       `json:"applied_at"`
	// Seq is the journal sequence number of the apply; the latest applied
	// version of a name is the one with the highest Seq.
	Seq int64 `json:"seq"`
}

// Event is one journal entry: the replication unit. Seq is gap-free across
// the whole store; Payload reproduces the change exactly.
type Event struct {
	Epoch   int64           `json:"epoch"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Payload json.RawMessage `json:"payload"`
}

// Position is a journal position: the last sequence number and its epoch
// (zero for an empty journal).
type Position struct {
	Seq   int64 `json:"seq"`
	Epoch int64 `json:"epoch"`
}

// EpochStart records that Epoch began at journal sequence FirstSeq.
type EpochStart struct {
	Epoch    int64 `json:"epoch"`
	FirstSeq int64 `json:"first_seq"`
}

// Meta is the replication state of a store.
type Meta struct {
	Role  Role  `json:"role"`
	Epoch int64 `json:"epoch"`
	// History lists every epoch this store knows, ascending.
	History []EpochStart `json:"history"`
	// Position is the last journal event held.
	Position Position `json:"position"`
	// KnownEpoch is the newest epoch this store has heard of (≥ Epoch), for
	// example from Fence, and KnownPrimary who holds it, if known.
	KnownEpoch   int64  `json:"known_epoch"`
	KnownPrimary string `json:"known_primary,omitempty"`
}

// QuarantinedEvent is a journal event a former primary held that the new
// primary never received, set aside by Rejoin. Never dropped silently.
type QuarantinedEvent struct {
	Event
	// QuarantinedAt is when Rejoin set it aside.
	QuarantinedAt time.Time `json:"quarantined_at"`
	// NewEpoch is the epoch whose history made the event divergent.
	NewEpoch int64 `json:"new_epoch"`
}

// RejoinReport says what Rejoin did.
type RejoinReport struct {
	// ForkSeq is the first sequence number where the local journal and the
	// new history disagree; 0 when they do not.
	ForkSeq int64 `json:"fork_seq"`
	// Quarantined counts the events moved to quarantine.
	Quarantined int `json:"quarantined"`
	// Epoch is the epoch adopted.
	Epoch int64 `json:"epoch"`
}

// Order is a list order.
type Order string

// List orders.
const (
	Asc  Order = "asc"
	Desc Order = "desc"
)

// ListOptions pages through items with OpenAI semantics.
type ListOptions struct {
	// After is an item ID: list items after it in Order. Default: from the
	// start.
	After string
	// Limit is 1..100. Default 20.
	Limit int
	// Order is asc or desc. Default desc (as the OpenAI API).
	Order Order
}

// ItemPage is one page of items.
type ItemPage struct {
	Items   []Item
	HasMore bool
}
