package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Reads work in every role: a standby serves them so anyone can verify
// what it holds.

const itemColumns = "conversation_id, seq, id, type, role, data, created_at, deleted"

func scanItem(sc interface{ Scan(...any) error }) (Item, error) {
	var it Item
	var data []byte
	var at int64
	var del int
	if err := sc.Scan(&it.ConversationID, &it.Seq, &it.ID, &it.Type, &it.Role, &data, &at, &del); err != nil {
		return Item{}, err
	}
	it.Data, it.CreatedAt, it.Deleted = data, fromMicros(at), del != 0
	return it, nil
}

const responseColumns = `id, status, model, conversation_id, previous_response_id, data,
	key_scope, idempotency_key, request_hash, created_at, updated_at, deleted`

func scanResponse(sc interface{ Scan(...any) error }) (Response, error) {
	var r Response
	var data []byte
	var created, updated int64
	var del int
	if err := sc.Scan(&r.ID, &r.Status, &r.Model, &r.ConversationID, &r.PreviousResponseID, &data,
		&r.KeyScope, &r.IdempotencyKey, &r.RequestHash, &created, &updated, &del); err != nil {
		return Response{}, err
	}
	r.Data, r.CreatedAt, r.UpdatedAt, r.Deleted = data, fromMicros(created), fromMicros(updated), del != 0
	return r, nil
}

// getConversation returns the conversation, deleted or not.
func (e *Engine) getConversation(ctx context.Context, q querier, id string) (Conversation, error) {
	var c Conversation
	var at int64
	var md string
	var del int
	err := q.QueryRowContext(ctx, e.q("SELECT id, created_at, metadata, deleted FROM conversations WHERE id = ?"), id).Scan(&c.ID, &at, &md, &del)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, notFoundf("conversation %s", id)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("get conversation %s: %w", id, err)
	}
	c.CreatedAt, c.Deleted = fromMicros(at), del != 0
	if err := json.Unmarshal([]byte(md), &c.Metadata); err != nil {
		return Conversation{}, fmt.Errorf("get conversation %s: metadata: %w", id, err)
	}
	return c, nil
}

// liveConversation is getConversation that treats deleted as not found.
func (e *Engine) liveConversation(ctx context.Context, q querier, id string) (Conversation, error) {
	c, err := e.getConversation(ctx, q, id)
	if err == nil && c.Deleted {
		return Conversation{}, notFoundf("conversation %s (deleted)", id)
	}
	return c, err
}

// Conversation returns a conversation; a deleted one is ErrNotFound.
func (e *Engine) Conversation(ctx context.Context, id string) (Conversation, error) {
	return e.liveConversation(ctx, e.r, id)
}

func (e *Engine) getItem(ctx context.Context, q querier, convID, itemID string) (Item, error) {
	it, err := scanItem(q.QueryRowContext(ctx, e.q("SELECT "+itemColumns+" FROM items WHERE conversation_id = ? AND id = ?"), convID, itemID))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, notFoundf("item %s in conversation %s", itemID, convID)
	}
	if err != nil {
		return Item{}, fmt.Errorf("get item %s: %w", itemID, err)
	}
	return it, nil
}

// Item returns one item of a live conversation; a deleted item is
// ErrNotFound.
func (e *Engine) Item(ctx context.Context, convID, itemID string) (Item, error) {
	if _, err := e.liveConversation(ctx, e.r, convID); err != nil {
		return Item{}, err
	}
	it, err := e.getItem(ctx, e.r, convID, itemID)
	if err == nil && it.Deleted {
		return Item{}, notFoundf("item %s (deleted)", itemID)
	}
	return it, err
}

// ListItems pages through the items of a live conversation with OpenAI
// semantics: After is an item ID (exclusive), Limit 1..100 (default 20),
// Order asc or desc (default desc). Deleted items are skipped.
func (e *Engine) ListItems(ctx context.Context, convID string, opts ListOptions) (ItemPage, error) {
	limit := opts.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return ItemPage{}, invalidf("limit %d: must be 1 to %d", opts.Limit, MaxListLimit)
	}
	order := opts.Order
	if order == "" {
		order = Desc
	}
	if order != Asc && order != Desc {
		return ItemPage{}, invalidf("order %q: must be asc or desc", opts.Order)
	}
	tx, err := e.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ItemPage{}, fmt.Errorf("list items: %w", err)
	}
	defer tx.Rollback()
	if _, err := e.liveConversation(ctx, tx, convID); err != nil {
		return ItemPage{}, err
	}
	var query string
	var args []any
	switch {
	case order == Asc:
		query = "SELECT " + itemColumns + " FROM items WHERE conversation_id = ? AND deleted = 0 AND seq > ? ORDER BY seq ASC LIMIT ?"
		args = []any{convID, int64(0), limit + 1}
	default:
		query = "SELECT " + itemColumns + " FROM items WHERE conversation_id = ? AND deleted = 0 AND seq < ? ORDER BY seq DESC LIMIT ?"
		args = []any{convID, int64(1) << 62, limit + 1}
	}
	if opts.After != "" {
		after, err := e.getItem(ctx, tx, convID, opts.After)
		if errors.Is(err, ErrNotFound) {
			return ItemPage{}, invalidf("after: no item %s in conversation %s", opts.After, convID)
		}
		if err != nil {
			return ItemPage{}, fmt.Errorf("list items: %w", err)
		}
		args[1] = after.Seq
	}
	rows, err := tx.QueryContext(ctx, e.q(query), args...)
	if err != nil {
		return ItemPage{}, fmt.Errorf("list items: %w", err)
	}
	defer rows.Close()
	page := ItemPage{Items: []Item{}}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return ItemPage{}, fmt.Errorf("list items: %w", err)
		}
		page.Items = append(page.Items, it)
	}
	if err := rows.Err(); err != nil {
		return ItemPage{}, fmt.Errorf("list items: %w", err)
	}
	if len(page.Items) > limit {
		page.Items, page.HasMore = page.Items[:limit], true
	}
	return page, nil
}

// Items returns every live item of a live conversation in sequence order:
// what a turn sends to the model.
func (e *Engine) Items(ctx context.Context, convID string) ([]Item, error) {
	tx, err := e.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	defer tx.Rollback()
	if _, err := e.liveConversation(ctx, tx, convID); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, e.q("SELECT "+itemColumns+" FROM items WHERE conversation_id = ? AND deleted = 0 ORDER BY seq"), convID)
	if err != nil {
		return nil, fmt.Errorf("items of %s: %w", convID, err)
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("items of %s: %w", convID, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("items of %s: %w", convID, err)
	}
	return items, nil
}

func (e *Engine) getResponse(ctx context.Context, q querier, id string) (Response, error) {
	r, err := scanResponse(q.QueryRowContext(ctx, e.q("SELECT "+responseColumns+" FROM responses WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Response{}, notFoundf("response %s", id)
	}
	if err != nil {
		return Response{}, fmt.Errorf("get response %s: %w", id, err)
	}
	return r, nil
}

func (e *Engine) responseByKey(ctx context.Context, q querier, scope, key string) (Response, error) {
	r, err := scanResponse(q.QueryRowContext(ctx, e.q("SELECT "+responseColumns+" FROM responses WHERE key_scope = ? AND idempotency_key = ?"), scope, key))
	if errors.Is(err, sql.ErrNoRows) {
		return Response{}, notFoundf("response with idempotency key %q", key)
	}
	if err != nil {
		return Response{}, fmt.Errorf("get response by idempotency key: %w", err)
	}
	return r, nil
}

// Response returns a response; a deleted one is ErrNotFound.
func (e *Engine) Response(ctx context.Context, id string) (Response, error) {
	r, err := e.getResponse(ctx, e.r, id)
	if err == nil && r.Deleted {
		return Response{}, notFoundf("response %s (deleted)", id)
	}
	return r, err
}

// ResponseByKey returns the response created under an idempotency key in
// a key scope (deleted ones included, flagged Deleted).
func (e *Engine) ResponseByKey(ctx context.Context, scope, key string) (Response, error) {
	if key == "" {
		return Response{}, invalidf("empty idempotency key")
	}
	return e.responseByKey(ctx, e.r, scope, key)
}

const agentColumns = "name, version, hash, definition, applied_at, seq"

func scanAgent(sc interface{ Scan(...any) error }) (AgentVersion, error) {
	var a AgentVersion
	var def []byte
	var at int64
	if err := sc.Scan(&a.Name, &a.Version, &a.Hash, &def, &at, &a.Seq); err != nil {
		return AgentVersion{}, err
	}
	a.Definition, a.AppliedAt = def, fromMicros(at)
	return a, nil
}

func (e *Engine) getAgent(ctx context.Context, q querier, name, version string) (AgentVersion, error) {
	var row *sql.Row
	if version == "" {
		row = q.QueryRowContext(ctx, e.q("SELECT "+agentColumns+" FROM agent_versions WHERE name = ? ORDER BY seq DESC LIMIT 1"), name)
	} else {
		row = q.QueryRowContext(ctx, e.q("SELECT "+agentColumns+" FROM agent_versions WHERE name = ? AND version = ?"), name, version)
	}
	a, err := scanAgent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return AgentVersion{}, notFoundf("agent %s version %q", name, version)
	}
	if err != nil {
		return AgentVersion{}, fmt.Errorf("get agent %s: %w", name, err)
	}
	return a, nil
}

// AgentVersion returns an applied agent version; version "" means the one
// applied last.
func (e *Engine) AgentVersion(ctx context.Context, name, version string) (AgentVersion, error) {
	return e.getAgent(ctx, e.r, name, version)
}

// AgentVersions lists every applied agent version, by name then apply
// order.
func (e *Engine) AgentVersions(ctx context.Context) ([]AgentVersion, error) {
	rows, err := e.r.QueryContext(ctx, e.q("SELECT "+agentColumns+" FROM agent_versions ORDER BY name, seq"))
	if err != nil {
		return nil, fmt.Errorf("list agent versions: %w", err)
	}
	defer rows.Close()
	out := []AgentVersion{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agent versions: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agent versions: %w", err)
	}
	return out, nil
}

// Digest summarises the whole replicated state: row counts and a SHA-256
// over every row of every state table in a canonical order and encoding.
// Two stores with the same digest hold the same conversations, items,
// responses and agent versions, byte for byte; drills and tests compare
// the primary's digest with the standby's.
type Digest struct {
	Conversations int    `json:"conversations"`
	Items         int    `json:"items"`
	Responses     int    `json:"responses"`
	AgentVersions int    `json:"agent_versions"`
	SHA256        string `json:"sha256"`
}

// Digest computes the state digest in one read transaction.
func (e *Engine) Digest(ctx context.Context) (Digest, error) {
	tx, err := e.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Digest{}, fmt.Errorf("digest: %w", err)
	}
	defer tx.Rollback()
	h := sha256.New()
	enc := json.NewEncoder(h)
	var d Digest
	each := func(table, query string, scan func(*sql.Rows) (any, error), n *int) error {
		rows, err := tx.QueryContext(ctx, e.q(query))
		if err != nil {
			return fmt.Errorf("digest %s: %w", table, err)
		}
		defer rows.Close()
		fmt.Fprintf(h, "table %s\n", table)
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return fmt.Errorf("digest %s: %w", table, err)
			}
			if err := enc.Encode(v); err != nil {
				return fmt.Errorf("digest %s: %w", table, err)
			}
			*n++
		}
		return rows.Err()
	}
	err = each("conversations", "SELECT id, created_at, metadata, deleted FROM conversations ORDER BY id", func(r *sql.Rows) (any, error) {
		var id, md string
		var at, del int64
		err := r.Scan(&id, &at, &md, &del)
		return []any{id, at, md, del}, err
	}, &d.Conversations)
	if err == nil {
		err = each("items", "SELECT "+itemColumns+" FROM items ORDER BY conversation_id, seq", func(r *sql.Rows) (any, error) {
			return scanItem(r)
		}, &d.Items)
	}
	if err == nil {
		err = each("responses", "SELECT "+responseColumns+" FROM responses ORDER BY id", func(r *sql.Rows) (any, error) {
			return scanResponse(r)
		}, &d.Responses)
	}
	if err == nil {
		err = each("agent_versions", "SELECT "+agentColumns+" FROM agent_versions ORDER BY name, version", func(r *sql.Rows) (any, error) {
			return scanAgent(r)
		}, &d.AgentVersions)
	}
	if err != nil {
		return Digest{}, err
	}
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	return d, nil
}
