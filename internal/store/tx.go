package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Tx is one write transaction of a primary, handed to the function given
// to Update. Every mutation is journaled as an event and applied from that
// event's payload, by the same code a standby runs. A Tx is not safe for
// concurrent use and is invalid once Update returns.
type Tx struct {
	ctx    context.Context
	e      *Engine
	tx     *wtx
	epoch  int64
	pos    Position
	now    time.Time
	broken error // a failed statement: the transaction must roll back
}

// emit journals c as the next event and applies it.
func (t *Tx) emit(c change) error {
	if t.broken != nil {
		return t.broken
	}
	payload, err := encodeChange(c)
	if err != nil {
		return err
	}
	ev := Event{Epoch: t.epoch, Seq: t.pos.Seq + 1, Kind: c.kind(), At: t.now, Payload: payload}
	// Decode what a standby will decode, and apply that.
	dc, err := decodeChange(ev)
	if err != nil {
		return err
	}
	if err := t.e.apply(t.ctx, t.tx, ev, dc); err != nil {
		t.broken = err
		return err
	}
	if err := t.e.insertEvent(t.ctx, t.tx, ev); err != nil {
		t.broken = err
		return err
	}
	t.pos = Position{Seq: ev.Seq, Epoch: ev.Epoch}
	return nil
}

// fail marks the transaction broken after a failed query.
func (t *Tx) fail(err error) error {
	if !errors.Is(err, ErrNotFound) {
		t.broken = err
	}
	return err
}

// Now is the transaction's timestamp (microsecond precision), the default
// for every created_at it writes.
func (t *Tx) Now() time.Time { return t.now }

// Epoch is the epoch the transaction writes in.
func (t *Tx) Epoch() int64 { return t.epoch }

// CreateConversation creates a conversation. An empty ID gets a new
// "conv_…" ID, a zero CreatedAt the transaction's time; nil Metadata is
// empty. An existing ID is ErrConflict.
func (t *Tx) CreateConversation(c Conversation) (Conversation, error) {
	if c.ID == "" {
		c.ID = NewID(PrefixConversation)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = t.now
	}
	c.CreatedAt, c.Metadata, c.Deleted = truncate(c.CreatedAt), cloneMetadata(c.Metadata), false
	ch := &conversationCreate{ID: c.ID, CreatedAt: c.CreatedAt, Metadata: c.Metadata}
	if err := validateChange(ch); err != nil {
		return Conversation{}, err
	}
	if _, err := t.e.getConversation(t.ctx, t.tx, c.ID); err == nil {
		return Conversation{}, conflictf("conversation %s exists", c.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return Conversation{}, t.fail(err)
	}
	if err := t.emit(ch); err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// Conversation reads a live conversation inside the transaction.
func (t *Tx) Conversation(id string) (Conversation, error) {
	c, err := t.e.liveConversation(t.ctx, t.tx, id)
	if err != nil {
		return Conversation{}, t.fail(err)
	}
	return c, nil
}

// UpdateConversation replaces a live conversation's metadata.
func (t *Tx) UpdateConversation(id string, metadata map[string]string) (Conversation, error) {
	c, err := t.Conversation(id)
	if err != nil {
		return Conversation{}, err
	}
	c.Metadata = cloneMetadata(metadata)
	ch := &conversationUpdate{ID: id, Metadata: c.Metadata}
	if err := validateChange(ch); err != nil {
		return Conversation{}, err
	}
	if err := t.emit(ch); err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// DeleteConversation marks a live conversation deleted; its items stay in
// the store but are no longer readable.
func (t *Tx) DeleteConversation(id string) error {
	if _, err := t.Conversation(id); err != nil {
		return err
	}
	return t.emit(&conversationDelete{ID: id})
}

// AppendItems appends items to a live conversation and returns them with
// their IDs, per-conversation Seq and CreatedAt filled in. An empty ID gets
// a new one from the type ("msg_", "fc_", "fco_"); an ID already in the
// conversation is ErrConflict.
func (t *Tx) AppendItems(convID string, items []Item) ([]Item, error) {
	if _, err := t.Conversation(convID); err != nil {
		return nil, err
	}
	var last int64
	if err := t.tx.QueryRowContext(t.ctx, t.e.q("SELECT COALESCE(MAX(seq), 0) FROM items WHERE conversation_id = ?"), convID).Scan(&last); err != nil {
		return nil, t.fail(fmt.Errorf("append items to %s: %w", convID, err))
	}
	out := make([]Item, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if err := validItemType(it.Type); err != nil {
			return nil, err
		}
		if it.ID == "" {
			it.ID = NewID(itemPrefix(it.Type))
		}
		if seen[it.ID] {
			return nil, conflictf("item %s twice in one append", it.ID)
		}
		seen[it.ID] = true
		if it.CreatedAt.IsZero() {
			it.CreatedAt = t.now
		}
		data, err := compactJSON("item "+it.ID+" data", it.Data)
		if err != nil {
			return nil, err
		}
		ch := &itemAdd{ConversationID: convID, ID: it.ID, Type: it.Type, Role: it.Role, Data: data, CreatedAt: truncate(it.CreatedAt)}
		ch.Seq = last + 1
		if err := validateChange(ch); err != nil {
			return nil, err
		}
		if _, err := t.e.getItem(t.ctx, t.tx, convID, it.ID); err == nil {
			return nil, conflictf("item %s exists in conversation %s", it.ID, convID)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, t.fail(err)
		}
		out = append(out, Item{ConversationID: convID, Seq: ch.Seq, ID: ch.ID, Type: ch.Type, Role: ch.Role, Data: ch.Data, CreatedAt: ch.CreatedAt})
		last++
	}
	// Emit only after every item validated, so a rejected append leaves
	// the transaction usable.
	for _, it := range out {
		if err := t.emit(&itemAdd{ConversationID: convID, Seq: it.Seq, ID: it.ID, Type: it.Type, Role: it.Role, Data: it.Data, CreatedAt: it.CreatedAt}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteItem marks an item of a live conversation deleted. Its sequence
// number is not reused.
func (t *Tx) DeleteItem(convID, itemID string) error {
	if _, err := t.Conversation(convID); err != nil {
		return err
	}
	it, err := t.e.getItem(t.ctx, t.tx, convID, itemID)
	if err != nil {
		return t.fail(err)
	}
	if it.Deleted {
		return notFoundf("item %s (deleted)", itemID)
	}
	return t.emit(&itemDelete{ConversationID: convID, ID: itemID})
}

// CreateResponse stores a new response. An empty ID gets a new "resp_…",
// a zero CreatedAt the transaction's time. With an IdempotencyKey, a
// response already created under the same KeyScope and key is returned
// with existing = true and nothing is written, if its RequestHash matches;
// otherwise (or if that response was deleted) it is ErrConflict.
func (t *Tx) CreateResponse(r Response) (resp Response, existing bool, err error) {
	if r.IdempotencyKey != "" {
		old, err := t.e.responseByKey(t.ctx, t.tx, r.KeyScope, r.IdempotencyKey)
		switch {
		case err == nil && old.Deleted:
			return Response{}, false, conflictf("idempotency key %q belongs to deleted response %s", r.IdempotencyKey, old.ID)
		case err == nil && old.RequestHash != r.RequestHash:
			return Response{}, false, conflictf("idempotency key %q reused with a different request", r.IdempotencyKey)
		case err == nil:
			return old, true, nil
		case !errors.Is(err, ErrNotFound):
			return Response{}, false, t.fail(err)
		}
	}
	if r.ID == "" {
		r.ID = NewID(PrefixResponse)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = t.now
	}
	r.CreatedAt = truncate(r.CreatedAt)
	r.UpdatedAt, r.Deleted = r.CreatedAt, false
	if r.Data, err = compactJSON("response "+r.ID+" data", r.Data); err != nil {
		return Response{}, false, err
	}
	ch := putOf(r)
	if err := validateChange(ch); err != nil {
		return Response{}, false, err
	}
	if _, err := t.e.getResponse(t.ctx, t.tx, r.ID); err == nil {
		return Response{}, false, conflictf("response %s exists", r.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return Response{}, false, t.fail(err)
	}
	if err := t.emit(ch); err != nil {
		return Response{}, false, err
	}
	return r, false, nil
}

// Response reads a live response inside the transaction.
func (t *Tx) Response(id string) (Response, error) {
	r, err := t.e.getResponse(t.ctx, t.tx, id)
	if err == nil && r.Deleted {
		err = notFoundf("response %s (deleted)", id)
	}
	if err != nil {
		return Response{}, t.fail(err)
	}
	return r, nil
}

// UpdateResponse replaces the Status, Data and (when not empty) Model of a
// live response; everything else is kept. UpdatedAt becomes the
// transaction's time.
func (t *Tx) UpdateResponse(r Response) (Response, error) {
	old, err := t.Response(r.ID)
	if err != nil {
		return Response{}, err
	}
	data, err := compactJSON("response "+r.ID+" data", r.Data)
	if err != nil {
		return Response{}, err
	}
	old.Status, old.Data, old.UpdatedAt = r.Status, data, t.now
	if r.Model != "" {
		old.Model = r.Model
	}
	ch := putOf(old)
	if err := validateChange(ch); err != nil {
		return Response{}, err
	}
	if err := t.emit(ch); err != nil {
		return Response{}, err
	}
	return old, nil
}

// DeleteResponse marks a live response deleted.
func (t *Tx) DeleteResponse(id string) error {
	if _, err := t.Response(id); err != nil {
		return err
	}
	return t.emit(&responseDelete{ID: id, UpdatedAt: t.now})
}

func putOf(r Response) *responsePut {
	return &responsePut{ID: r.ID, Status: r.Status, Model: r.Model, ConversationID: r.ConversationID,
		PreviousResponseID: r.PreviousResponseID, Data: r.Data, KeyScope: r.KeyScope,
		IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// PutAgentVersion records that an agent version was applied. Applying the
// same name, version and hash again returns the stored one with
// applied = false and writes nothing; another hash is ErrConflict. A zero
// AppliedAt is the transaction's time.
func (t *Tx) PutAgentVersion(a AgentVersion) (stored AgentVersion, applied bool, err error) {
	old, err := t.e.getAgent(t.ctx, t.tx, a.Name, a.Version)
	switch {
	case a.Version == "":
		return AgentVersion{}, false, invalidf("agent %s: empty version", a.Name)
	case err == nil && old.Hash == a.Hash:
		return old, false, nil
	case err == nil:
		return AgentVersion{}, false, conflictf("agent %s version %s already applied with hash %s", a.Name, a.Version, old.Hash)
	case !errors.Is(err, ErrNotFound):
		return AgentVersion{}, false, t.fail(err)
	}
	if a.AppliedAt.IsZero() {
		a.AppliedAt = t.now
	}
	a.AppliedAt = truncate(a.AppliedAt)
	if a.Definition, err = compactJSON("agent "+a.Name+" definition", a.Definition); err != nil {
		return AgentVersion{}, false, err
	}
	ch := &agentApply{Name: a.Name, Version: a.Version, Hash: a.Hash, Definition: a.Definition, AppliedAt: a.AppliedAt}
	if err := validateChange(ch); err != nil {
		return AgentVersion{}, false, err
	}
	if err := t.emit(ch); err != nil {
		return AgentVersion{}, false, err
	}
	a.Seq = t.pos.Seq
	return a, true, nil
}
