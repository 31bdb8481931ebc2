package agents

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/understudy/understudy/internal/store"
)

// MaxItemsPerRequest is how many items one conversation create or item
// create call may add, as in the OpenAI API.
const MaxItemsPerRequest = 20

// conversationObject is a conversation in the API shape.
type conversationObject struct {
	ID        string            `json:"id"`
	Object    string            `json:"object"`
	CreatedAt int64             `json:"created_at"`
	Metadata  map[string]string `json:"metadata"`
}

func conversationJSON(c store.Conversation) conversationObject {
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return conversationObject{ID: c.ID, Object: "conversation", CreatedAt: c.CreatedAt.Unix(), Metadata: md}
}

// itemList is the OpenAI list shape of items.
type itemList struct {
	Object  string            `json:"object"`
	Data    []json.RawMessage `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

func listOf(data []json.RawMessage, ids []string, hasMore bool) itemList {
	l := itemList{Object: "list", Data: data, HasMore: hasMore}
	if l.Data == nil {
		l.Data = []json.RawMessage{}
	}
	if len(ids) > 0 {
		l.FirstID, l.LastID = &ids[0], &ids[len(ids)-1]
	}
	return l
}

func storeItemList(items []store.Item, hasMore bool) itemList {
	data := make([]json.RawMessage, len(items))
	ids := make([]string, len(items))
	for i, it := range items {
		data[i], ids[i] = it.Data, it.ID
	}
	return listOf(data, ids, hasMore)
}

// checkMetadata enforces the OpenAI metadata limits.
func checkMetadata(m map[string]string, param string) error {
	if len(m) > store.MaxMetadataPairs {
		return badRequest(param, "%s has %d pairs, at most %d are allowed", param, len(m), store.MaxMetadataPairs)
	}
	for k, v := range m {
		switch {
		case k == "" || len(k) > store.MaxMetadataKey || !utf8.ValidString(k):
			return badRequest(param, "%s keys must be 1 to %d bytes", param, store.MaxMetadataKey)
		case len(v) > store.MaxMetadataValue || !utf8.ValidString(v):
			return badRequest(param+"."+k, "%s.%s is longer than %d bytes", param, k, store.MaxMetadataValue)
		}
	}
	return nil
}

// decodeObject decodes an optional JSON object body (empty means {}).
func decodeObject(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonParamError("", err)
	}
	return nil
}

func (s *Service) createConversation(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Items    json.RawMessage   `json:"items"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := decodeObject(body, &req); err != nil {
		return err
	}
	if err := checkMetadata(req.Metadata, "metadata"); err != nil {
		return err
	}
	var items []apiItem
	if len(req.Items) > 0 && string(req.Items) != "null" {
		if items, err = decodeInputList(req.Items, "items", MaxItemsPerRequest); err != nil {
			return err
		}
	}
	var conv store.Conversation
	err = s.update(r.Context(), func(tx *store.Tx) error {
		c, err := tx.CreateConversation(store.Conversation{Metadata: req.Metadata})
		if err != nil {
			return err
		}
		conv = c
		return appendItems(tx, c.ID, items)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, conversationJSON(conv))
}

// appendItems stores items (IDs set) at the end of a conversation.
func appendItems(tx *store.Tx, convID string, items []apiItem) error {
	if len(items) == 0 {
		return nil
	}
	sis := make([]store.Item, len(items))
	for i, it := range items {
		si, err := it.toStoreItem()
		if err != nil {
			return err
		}
		sis[i] = si
	}
	_, err := tx.AppendItems(convID, sis)
	return err
}

func (s *Service) getConversation(w http.ResponseWriter, r *http.Request) error {
	c, err := s.st.Conversation(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, conversationJSON(c))
}

func (s *Service) updateConversation(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Metadata *map[string]string `json:"metadata"`
	}
	if err := decodeObject(body, &req); err != nil {
		return err
	}
	if req.Metadata == nil {
		return badRequest("metadata", "metadata is required")
	}
	if err := checkMetadata(*req.Metadata, "metadata"); err != nil {
		return err
	}
	var conv store.Conversation
	err = s.update(r.Context(), func(tx *store.Tx) error {
		c, err := tx.UpdateConversation(r.PathValue("id"), *req.Metadata)
		conv = c
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, conversationJSON(conv))
}

func (s *Service) deleteConversation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.update(r.Context(), func(tx *store.Tx) error { return tx.DeleteConversation(id) }); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "conversation.deleted", "deleted": true})
}

func (s *Service) createItems(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Items json.RawMessage `json:"items"`
	}
	if err := decodeObject(body, &req); err != nil {
		return err
	}
	if len(req.Items) == 0 || string(req.Items) == "null" {
		return badRequest("items", "items is required")
	}
	items, err := decodeInputList(req.Items, "items", MaxItemsPerRequest)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return badRequest("items", "items must not be empty")
	}
	id := r.PathValue("id")
	var stored []store.Item
	err = s.update(r.Context(), func(tx *store.Tx) error {
		sis := make([]store.Item, len(items))
		for i, it := range items {
			if sis[i], err = it.toStoreItem(); err != nil {
				return err
			}
		}
		stored, err = tx.AppendItems(id, sis)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, storeItemList(stored, false))
}

// listParams reads after, limit and order.
func listParams(r *http.Request) (store.ListOptions, error) {
	q := r.URL.Query()
	opts := store.ListOptions{After: q.Get("after"), Order: store.Order(q.Get("order"))}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return opts, badRequest("limit", "limit must be an integer from 1 to %d", store.MaxListLimit)
		}
		opts.Limit = n
	}
	switch opts.Order {
	case "", store.Asc, store.Desc:
	default:
		return opts, badRequest("order", "order must be asc or desc")
	}
	return opts, nil
}

func (s *Service) listItems(w http.ResponseWriter, r *http.Request) error {
	opts, err := listParams(r)
	if err != nil {
		return err
	}
	page, err := s.st.ListItems(r.Context(), r.PathValue("id"), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, storeItemList(page.Items, page.HasMore))
}

func (s *Service) getItem(w http.ResponseWriter, r *http.Request) error {
	it, err := s.st.Item(r.Context(), r.PathValue("id"), r.PathValue("item_id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(it.Data, '\n'))
	return nil
}

func (s *Service) deleteItem(w http.ResponseWriter, r *http.Request) error {
	id, itemID := r.PathValue("id"), r.PathValue("item_id")
	var conv store.Conversation
	err := s.update(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteItem(id, itemID); err != nil {
			return err
		}
		c, err := tx.Conversation(id)
		conv = c
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, conversationJSON(conv))
}
