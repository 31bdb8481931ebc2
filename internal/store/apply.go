package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// apply makes the state change c, decoded from ev. The primary and every
// standby run this same function on the same payload bytes, which is what
// makes replicas identical.
func (e *Engine) apply(ctx context.Context, tx *wtx, ev Event, c change) error {
	var (
		res sql.Result
		err error
		one bool // the statement must touch exactly one row
	)
	switch c := c.(type) {
	case *conversationCreate:
		md, merr := json.Marshal(cloneMetadata(c.Metadata))
		if merr != nil {
			return fmt.Errorf("apply event %d: %w", ev.Seq, merr)
		}
		res, err = tx.ExecContext(ctx, e.q("INSERT INTO conversations (id, created_at, metadata, deleted) VALUES (?, ?, ?, 0)"),
			c.ID, micros(c.CreatedAt), string(md))
	case *conversationUpdate:
		md, merr := json.Marshal(cloneMetadata(c.Metadata))
		if merr != nil {
			return fmt.Errorf("apply event %d: %w", ev.Seq, merr)
		}
		res, err = tx.ExecContext(ctx, e.q("UPDATE conversations SET metadata = ? WHERE id = ?"), string(md), c.ID)
		one = true
	case *conversationDelete:
		res, err = tx.ExecContext(ctx, e.q("UPDATE conversations SET deleted = 1 WHERE id = ?"), c.ID)
		one = true
	case *itemAdd:
		res, err = tx.ExecContext(ctx, e.q("INSERT INTO items (conversation_id, seq, id, type, role, data, created_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, 0)"),
			c.ConversationID, c.Seq, c.ID, c.Type, c.Role, []byte(c.Data), micros(c.CreatedAt))
	case *itemDelete:
		res, err = tx.ExecContext(ctx, e.q("UPDATE items SET deleted = 1 WHERE conversation_id = ? AND id = ?"), c.ConversationID, c.ID)
		one = true
	case *responsePut:
		res, err = tx.ExecContext(ctx, e.q(`INSERT INTO responses (id, status, model, conversation_id, previous_response_id, data,
				key_scope, idempotency_key, request_hash, created_at, updated_at, deleted)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, model = excluded.model,
				conversation_id = excluded.conversation_id, previous_response_id = excluded.previous_response_id,
				data = excluded.data, key_scope = excluded.key_scope, idempotency_key = excluded.idempotency_key,
				request_hash = excluded.request_hash, created_at = excluded.created_at, updated_at = excluded.updated_at`),
			c.ID, c.Status, c.Model, c.ConversationID, c.PreviousResponseID, []byte(c.Data),
			c.KeyScope, c.IdempotencyKey, c.RequestHash, micros(c.CreatedAt), micros(c.UpdatedAt))
	case *responseDelete:
		res, err = tx.ExecContext(ctx, e.q("UPDATE responses SET deleted = 1, updated_at = ? WHERE id = ?"), micros(c.UpdatedAt), c.ID)
		one = true
	case *agentApply:
		res, err = tx.ExecContext(ctx, e.q("INSERT INTO agent_versions (name, version, hash, definition, applied_at, seq) VALUES (?, ?, ?, ?, ?, ?)"),
			c.Name, c.Version, c.Hash, []byte(c.Definition), micros(c.AppliedAt), ev.Seq)
	default:
		return fmt.Errorf("apply event %d: unknown change %T", ev.Seq, c)
	}
	if err != nil {
		return fmt.Errorf("apply event %d (%s): %w", ev.Seq, ev.Kind, err)
	}
	if one {
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("apply event %d (%s): %w", ev.Seq, ev.Kind, err)
		}
		if n != 1 {
			return fmt.Errorf("apply event %d (%s): %w: target missing", ev.Seq, ev.Kind, ErrConflict)
		}
	}
	return nil
}
