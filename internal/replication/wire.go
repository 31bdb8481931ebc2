package replication

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/understudy/understudy/internal/store"
)

// Paths the Handler serves; the gateway mounts it under /replication/.
const (
	PathEvents   = "/replication/events"
	PathPosition = "/replication/position"
)

// Batch is the body of POST /replication/events: journal events of the
// primary of Epoch, with that primary's epoch history so a receiver that
// is behind an epoch change can find its fork point.
type Batch struct {
	Epoch  int64              `json:"epoch"`
	Epochs []store.EpochStart `json:"epochs"`
	// From names the sending region (informational: NotPrimaryError
	// reports it as the known primary).
	From   string        `json:"from,omitempty"`
	Events []store.Event `json:"events"`
}

// Ack codes, in Ack.Code when a batch is refused.
const (
	CodeStaleEpoch   = "stale_epoch"  // the batch's epoch is older than the receiver's (409)
	CodeGap          = "gap"          // the batch does not follow the receiver's position (409)
	CodeConflict     = "conflict"     // diverged journal, or the receiver is a primary of the same epoch (409)
	CodeInvalid      = "invalid"      // malformed batch (400)
	CodeUnauthorized = "unauthorized" // missing or wrong secret (401)
	CodeTooLarge     = "too_large"    // body over the limit (413)
	CodeInternal     = "internal"     // the receiver's store failed (500)
)

// Ack is every answer of the Handler: the receiver's role, epoch,
// history and position after handling the request, and why a batch was
// refused, if it was.
type Ack struct {
	Role     store.Role         `json:"role"`
	Epoch    int64              `json:"epoch"`
	Epochs   []store.EpochStart `json:"epochs,omitempty"`
	Position store.Position     `json:"position"`
	Code     string             `json:"code,omitempty"`
	Error    string             `json:"error,omitempty"`
	// Rejoined is set when this batch made a former primary rejoin.
	Rejoined *store.RejoinReport `json:"rejoined,omitempty"`
}

// errBatch marks a malformed batch.
var errBatch = errors.New("malformed batch")

// DecodeBatch reads and checks a batch: known fields only, one JSON value,
// epoch ≥ 1, a valid history ending at Epoch, events in gap-free seq
// order with epochs in 1..Epoch. Payloads are checked by the store when
// it applies them.
func DecodeBatch(r io.Reader) (Batch, error) {
	var b Batch
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Batch{}, fmt.Errorf("%w: %w", errBatch, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Batch{}, fmt.Errorf("%w: trailing data", errBatch)
	}
	if err := b.check(); err != nil {
		return Batch{}, err
	}
	return b, nil
}

func (b *Batch) check() error {
	if b.Epoch < 1 {
		return fmt.Errorf("%w: epoch %d", errBatch, b.Epoch)
	}
	if err := store.ValidateHistory(b.Epochs); err != nil {
		return fmt.Errorf("%w: %v", errBatch, err)
	}
	if last := b.Epochs[len(b.Epochs)-1].Epoch; last != b.Epoch {
		return fmt.Errorf("%w: history ends at epoch %d, batch is epoch %d", errBatch, last, b.Epoch)
	}
	for i, ev := range b.Events {
		if ev.Seq < 1 || (i > 0 && ev.Seq != b.Events[i-1].Seq+1) {
			return fmt.Errorf("%w: event %d has seq %d, not in gap-free order", errBatch, i, ev.Seq)
		}
		if ev.Epoch < 1 || ev.Epoch > b.Epoch {
			return fmt.Errorf("%w: event %d has epoch %d outside 1..%d", errBatch, ev.Seq, ev.Epoch, b.Epoch)
		}
		if i > 0 && ev.Epoch < b.Events[i-1].Epoch {
			return fmt.Errorf("%w: event %d: epoch goes back", errBatch, ev.Seq)
		}
		if ev.Kind == "" || len(ev.Payload) == 0 {
			return fmt.Errorf("%w: event %d: empty kind or payload", errBatch, ev.Seq)
		}
	}
	return nil
}

// encodeBatch renders a batch without HTML escaping.
func encodeBatch(b Batch) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return buf.Bytes(), nil
}
