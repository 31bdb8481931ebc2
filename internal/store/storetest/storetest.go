// Package storetest is the contract every store driver passes:
// storetest.Run(t, open) exercises each operation, idempotency, the
// per-conversation sequence under concurrent appends, epoch and role
// refusals, the guard hook, journal apply/skip/gap/stale epoch,
// promote/fence, rejoin with quarantine, and pagination.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/store"
)

// Store is the store contract as the suite uses it. Every driver's
// concrete type (which embeds *store.Engine) satisfies it.
type Store interface {
	Update(ctx context.Context, epoch int64, fn func(*store.Tx) error) (store.Position, error)
	ApplyEvents(ctx context.Context, events []store.Event) (store.Position, error)
	ReadEvents(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error)
	Position(ctx context.Context) (store.Position, error)
	Meta(ctx context.Context) (store.Meta, error)
	Promote(ctx context.Context, newEpoch int64) error
	Fence(ctx context.Context, epoch int64) error
	NotePrimary(ctx context.Context, name string, epoch int64) error
	Rejoin(ctx context.Context, history []store.EpochStart) (store.RejoinReport, error)
	Quarantine(ctx context.Context) ([]store.QuarantinedEvent, error)
	SetGuard(g store.Guard)
	CommitSignal() <-chan struct{}
	Digest(ctx context.Context) (store.Digest, error)

	Conversation(ctx context.Context, id string) (store.Conversation, error)
	Item(ctx context.Context, convID, itemID string) (store.Item, error)
	ListItems(ctx context.Context, convID string, opts store.ListOptions) (store.ItemPage, error)
	Items(ctx context.Context, convID string) ([]store.Item, error)
	Response(ctx context.Context, id string) (store.Response, error)
	ResponseByKey(ctx context.Context, scope, key string) (store.Response, error)
	AgentVersion(ctx context.Context, name, version string) (store.AgentVersion, error)
	AgentVersions(ctx context.Context) ([]store.AgentVersion, error)
}

// Opener opens a new, empty store for one test and closes it at the end
// of the test (t.Cleanup).
type Opener func(t *testing.T) Store

// Run runs the contract suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"FreshStandby", testFreshStandby},
		{"Conversations", testConversations},
		{"Items", testItems},
		{"Pagination", testPagination},
		{"Responses", testResponses},
		{"AgentVersions", testAgentVersions},
		{"EpochAndRole", testEpochAndRole},
		{"Journal", testJournal},
		{"Guard", testGuard},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Apply", testApply},
		{"ApplyRefusals", testApplyRefusals},
		{"PromoteFence", testPromoteFence},
		{"Rejoin", testRejoin},
		{"RejoinRefusals", testRejoinRefusals},
		{"CommitSignal", testCommitSignal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// primary opens a store promoted to epoch 1.
func primary(t *testing.T, open Opener) Store {
	t.Helper()
	s := open(t)
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatalf("Promote(1): %v", err)
	}
	return s
}

func update(t *testing.T, s Store, epoch int64, fn func(*store.Tx) error) store.Position {
	t.Helper()
	pos, err := s.Update(t.Context(), epoch, fn)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return pos
}

func createConv(t *testing.T, s Store, epoch int64, md map[string]string) store.Conversation {
	t.Helper()
	var c store.Conversation
	update(t, s, epoch, func(tx *store.Tx) (err error) {
		c, err = tx.CreateConversation(store.Conversation{Metadata: md})
		return err
	})
	return c
}

func msg(role, text string) store.Item {
	data, _ := json.Marshal(map[string]any{
		"type": "message", "role": role,
		"content": []map[string]string{{"type": "input_text", "text": text}},
	})
	return store.Item{Type: store.ItemMessage, Role: role, Data: data}
}

func appendItems(t *testing.T, s Store, epoch int64, convID string, items ...store.Item) []store.Item {
	t.Helper()
	var out []store.Item
	update(t, s, epoch, func(tx *store.Tx) (err error) {
		out, err = tx.AppendItems(convID, items)
		return err
	})
	return out
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func digest(t *testing.T, s Store) store.Digest {
	t.Helper()
	d, err := s.Digest(t.Context())
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

func position(t *testing.T, s Store) store.Position {
	t.Helper()
	p, err := s.Position(t.Context())
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	return p
}

func meta(t *testing.T, s Store) store.Meta {
	t.Helper()
	m, err := s.Meta(t.Context())
	if err != nil {
		t.Fatalf("Meta: %v", err)
	}
	return m
}

// ship applies to dst every event src holds after dst's position.
func ship(t *testing.T, src, dst Store) store.Position {
	t.Helper()
	for {
		evs, err := src.ReadEvents(t.Context(), position(t, dst).Seq, 50)
		if err != nil {
			t.Fatalf("ReadEvents: %v", err)
		}
		if len(evs) == 0 {
			return position(t, dst)
		}
		if _, err := dst.ApplyEvents(t.Context(), evs); err != nil {
			t.Fatalf("ApplyEvents: %v", err)
		}
	}
}

func testFreshStandby(t *testing.T, open Opener) {
	s := open(t)
	m := meta(t, s)
	if m.Role != store.RoleStandby || m.Epoch != 0 || len(m.History) != 0 || m.Position != (store.Position{}) {
		t.Fatalf("fresh store meta = %+v, want standby at epoch 0 with empty history", m)
	}
	_, err := s.Update(t.Context(), 0, func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{})
		return err
	})
	wantErr(t, "write to fresh standby", err, store.ErrNotPrimary)
	if d := digest(t, s); d.Conversations != 0 {
		t.Fatalf("refused write left %d conversations", d.Conversations)
	}
}

func testConversations(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	c := createConv(t, s, 1, map[string]string{"topic": "demo"})
	if !strings.HasPrefix(c.ID, store.PrefixConversation) || c.CreatedAt.IsZero() {
		t.Fatalf("created conversation %+v: want conv_ ID and created_at", c)
	}
	got, err := s.Conversation(ctx, c.ID)
	if err != nil {
		t.Fatalf("Conversation: %v", err)
	}
	if got.ID != c.ID || !got.CreatedAt.Equal(c.CreatedAt) || got.Metadata["topic"] != "demo" || len(got.Metadata) != 1 {
		t.Fatalf("Conversation = %+v, want %+v", got, c)
	}
	update(t, s, 1, func(tx *store.Tx) error {
		_, err := tx.UpdateConversation(c.ID, map[string]string{"a": "1", "b": "2"})
		return err
	})
	if got, _ := s.Conversation(ctx, c.ID); len(got.Metadata) != 2 || got.Metadata["topic"] != "" {
		t.Fatalf("metadata after update = %v, want replaced by {a, b}", got.Metadata)
	}

	fixed := "conv_fixed1"
	update(t, s, 1, func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{ID: fixed, CreatedAt: time.Unix(1700000000, 123456789)})
		return err
	})
	if got, _ := s.Conversation(ctx, fixed); got.CreatedAt.UnixMicro() != 1700000000123456 {
		t.Fatalf("created_at = %v, want the given time at microsecond precision", got.CreatedAt)
	}

	big := map[string]string{}
	for i := range store.MaxMetadataPairs + 1 {
		big[fmt.Sprint("k", i)] = "v"
	}
	cases := []struct {
		name string
		fn   func(tx *store.Tx) error
		want error
	}{
		{"17 metadata pairs", func(tx *store.Tx) error {
			_, err := tx.CreateConversation(store.Conversation{Metadata: big})
			return err
		}, store.ErrInvalid},
		{"long metadata value", func(tx *store.Tx) error {
			_, err := tx.CreateConversation(store.Conversation{Metadata: map[string]string{"k": strings.Repeat("x", 513)}})
			return err
		}, store.ErrInvalid},
		{"bad id prefix", func(tx *store.Tx) error {
			_, err := tx.CreateConversation(store.Conversation{ID: "resp_1"})
			return err
		}, store.ErrInvalid},
		{"duplicate id", func(tx *store.Tx) error {
			_, err := tx.CreateConversation(store.Conversation{ID: fixed})
			return err
		}, store.ErrConflict},
		{"update missing", func(tx *store.Tx) error {
			_, err := tx.UpdateConversation("conv_missing", nil)
			return err
		}, store.ErrNotFound},
		{"delete missing", func(tx *store.Tx) error { return tx.DeleteConversation("conv_missing") }, store.ErrNotFound},
	}
	for _, tc := range cases {
		before := position(t, s)
		_, err := s.Update(ctx, 1, tc.fn)
		wantErr(t, tc.name, err, tc.want)
		if after := position(t, s); after != before {
			t.Fatalf("%s: position moved %v → %v on a refused write", tc.name, before, after)
		}
	}

	update(t, s, 1, func(tx *store.Tx) error { return tx.DeleteConversation(c.ID) })
	_, err = s.Conversation(ctx, c.ID)
	wantErr(t, "get deleted conversation", err, store.ErrNotFound)
	_, err = s.Items(ctx, c.ID)
	wantErr(t, "items of deleted conversation", err, store.ErrNotFound)
	_, err = s.Update(ctx, 1, func(tx *store.Tx) error {
		_, err := tx.AppendItems(c.ID, []store.Item{msg("user", "hi")})
		return err
	})
	wantErr(t, "append to deleted conversation", err, store.ErrNotFound)
}

func testItems(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	c := createConv(t, s, 1, nil)
	fc := store.Item{Type: store.ItemFunctionCall, Data: json.RawMessage(`{"type":"function_call","call_id":"call_1","name":"weather","arguments":"{}"}`)}
	fco := store.Item{Type: store.ItemFunctionCallOutput, Data: json.RawMessage(`{"type": "function_call_output", "call_id": "call_1", "output": "<sunny & 20°>"}`)}
	items := appendItems(t, s, 1, c.ID, msg("user", "weather?"), fc, fco)
	prefixes := []string{store.PrefixMessage, store.PrefixFunctionCall, store.PrefixFunctionCallOutput}
	for i, it := range items {
		if it.Seq != int64(i+1) || !strings.HasPrefix(it.ID, prefixes[i]) || it.ConversationID != c.ID {
			t.Fatalf("item %d = seq %d id %s conv %s, want seq %d, prefix %s", i, it.Seq, it.ID, it.ConversationID, i+1, prefixes[i])
		}
	}
	more := appendItems(t, s, 1, c.ID, msg("assistant", "sunny"))
	if more[0].Seq != 4 {
		t.Fatalf("second append seq = %d, want 4", more[0].Seq)
	}
	got, err := s.Item(ctx, c.ID, items[2].ID)
	if err != nil {
		t.Fatalf("Item: %v", err)
	}
	var v map[string]string
	if err := json.Unmarshal(got.Data, &v); err != nil || v["output"] != "<sunny & 20°>" || got.Type != store.ItemFunctionCallOutput {
		t.Fatalf("Item data = %s (%v), want the stored JSON", got.Data, err)
	}
	all, err := s.Items(ctx, c.ID)
	if err != nil || len(all) != 4 {
		t.Fatalf("Items = %d items, %v; want 4", len(all), err)
	}
	for i, it := range all {
		if it.Seq != int64(i+1) {
			t.Fatalf("Items[%d].Seq = %d", i, it.Seq)
		}
	}

	// Deleting an item hides it; its seq is not reused.
	update(t, s, 1, func(tx *store.Tx) error { return tx.DeleteItem(c.ID, items[0].ID) })
	_, err = s.Item(ctx, c.ID, items[0].ID)
	wantErr(t, "get deleted item", err, store.ErrNotFound)
	if next := appendItems(t, s, 1, c.ID, msg("user", "thanks")); next[0].Seq != 5 {
		t.Fatalf("seq after delete = %d, want 5", next[0].Seq)
	}
	if all, _ := s.Items(ctx, c.ID); len(all) != 4 || all[0].ID != items[1].ID {
		t.Fatalf("Items after delete: %d items, first %s; want 4 starting at %s", len(all), all[0].ID, items[1].ID)
	}

	cases := []struct {
		name  string
		items []store.Item
		want  error
	}{
		{"unknown type", []store.Item{{Type: "reasoning", Data: json.RawMessage(`{}`)}}, store.ErrInvalid},
		{"bad json", []store.Item{{Type: store.ItemMessage, Data: json.RawMessage(`{`)}}, store.ErrInvalid},
		{"empty data", []store.Item{{Type: store.ItemMessage}}, store.ErrInvalid},
		{"existing id", []store.Item{{ID: items[1].ID, Type: store.ItemMessage, Data: json.RawMessage(`{}`)}}, store.ErrConflict},
		{"same id twice", []store.Item{{ID: "msg_x", Type: store.ItemMessage, Data: json.RawMessage(`{}`)}, {ID: "msg_x", Type: store.ItemMessage, Data: json.RawMessage(`{}`)}}, store.ErrConflict},
	}
	for _, tc := range cases {
		_, err := s.Update(ctx, 1, func(tx *store.Tx) error {
			_, err := tx.AppendItems(c.ID, tc.items)
			return err
		})
		wantErr(t, tc.name, err, tc.want)
	}
	_, err = s.Update(ctx, 1, func(tx *store.Tx) error {
		_, err := tx.AppendItems("conv_missing", []store.Item{msg("user", "x")})
		return err
	})
	wantErr(t, "append to missing conversation", err, store.ErrNotFound)
	_, err = s.Item(ctx, c.ID, "msg_missing")
	wantErr(t, "missing item", err, store.ErrNotFound)
}

func testPagination(t *testing.T, open Opener) {
	s := primary(t, open)
	c := createConv(t, s, 1, nil)
	var in []store.Item
	for i := range 7 {
		in = append(in, msg("user", fmt.Sprint("m", i)))
	}
	items := appendItems(t, s, 1, c.ID, in...)
	ids := func(p store.ItemPage) string {
		var out []string
		for _, it := range p.Items {
			out = append(out, fmt.Sprint(it.Seq))
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		name     string
		opts     store.ListOptions
		want     string
		wantMore bool
		wantErr  error
	}{
		{"default desc", store.ListOptions{}, "7,6,5,4,3,2,1", false, nil},
		{"asc limit 3", store.ListOptions{Order: store.Asc, Limit: 3}, "1,2,3", true, nil},
		{"asc after 3", store.ListOptions{Order: store.Asc, Limit: 3, After: items[2].ID}, "4,5,6", true, nil},
		{"asc after 6", store.ListOptions{Order: store.Asc, Limit: 3, After: items[5].ID}, "7", false, nil},
		{"asc exact end", store.ListOptions{Order: store.Asc, Limit: 2, After: items[4].ID}, "6,7", false, nil},
		{"desc limit 2", store.ListOptions{Order: store.Desc, Limit: 2}, "7,6", true, nil},
		{"desc after 5", store.ListOptions{Order: store.Desc, Limit: 10, After: items[4].ID}, "4,3,2,1", false, nil},
		{"desc after first", store.ListOptions{Order: store.Desc, After: items[0].ID}, "", false, nil},
		{"limit 100", store.ListOptions{Limit: 100}, "7,6,5,4,3,2,1", false, nil},
		{"limit 101", store.ListOptions{Limit: 101}, "", false, store.ErrInvalid},
		{"limit -1", store.ListOptions{Limit: -1}, "", false, store.ErrInvalid},
		{"bad order", store.ListOptions{Order: "up"}, "", false, store.ErrInvalid},
		{"unknown after", store.ListOptions{After: "msg_nope"}, "", false, store.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.ListItems(t.Context(), c.ID, tc.opts)
			if tc.wantErr != nil {
				wantErr(t, "ListItems", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("ListItems: %v", err)
			}
			if got := ids(p); got != tc.want || p.HasMore != tc.wantMore {
				t.Fatalf("ListItems(%+v) = [%s] more=%v, want [%s] more=%v", tc.opts, got, p.HasMore, tc.want, tc.wantMore)
			}
		})
	}
	// Paging through with the cursor visits every item once.
	var seen []int64
	after := ""
	for {
		p, err := s.ListItems(t.Context(), c.ID, store.ListOptions{Order: store.Asc, Limit: 2, After: after})
		if err != nil {
			t.Fatalf("ListItems: %v", err)
		}
		for _, it := range p.Items {
			seen = append(seen, it.Seq)
		}
		if !p.HasMore {
			break
		}
		after = p.Items[len(p.Items)-1].ID
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5 6 7]" {
		t.Fatalf("paged through %v", seen)
	}
	// A deleted item is skipped but still works as a cursor.
	update(t, s, 1, func(tx *store.Tx) error { return tx.DeleteItem(c.ID, items[3].ID) })
	p, err := s.ListItems(t.Context(), c.ID, store.ListOptions{Order: store.Asc, After: items[3].ID})
	if err != nil || ids(p) != "5,6,7" {
		t.Fatalf("after deleted item: [%s] %v, want [5,6,7]", ids(p), err)
	}
	p, _ = s.ListItems(t.Context(), c.ID, store.ListOptions{Order: store.Asc})
	if ids(p) != "1,2,3,5,6,7" {
		t.Fatalf("list with deleted item = [%s]", ids(p))
	}
	_, err = s.ListItems(t.Context(), "conv_missing", store.ListOptions{})
	wantErr(t, "list missing conversation", err, store.ErrNotFound)
}

func testResponses(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	c := createConv(t, s, 1, nil)
	req := store.Response{
		Status: "in_progress", Model: "gpt-4.1-mini", ConversationID: c.ID,
		Data:     json.RawMessage(`{"object":"response","status":"in_progress"}`),
		KeyScope: "key-a", IdempotencyKey: "idem-1", RequestHash: "h1",
	}
	var r store.Response
	var existing bool
	pos1 := update(t, s, 1, func(tx *store.Tx) (err error) {
		r, existing, err = tx.CreateResponse(req)
		return err
	})
	if existing || !strings.HasPrefix(r.ID, store.PrefixResponse) || r.CreatedAt.IsZero() || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Fatalf("CreateResponse = %+v existing=%v", r, existing)
	}

	// Same key and body: the same response, nothing written.
	var again store.Response
	pos2 := update(t, s, 1, func(tx *store.Tx) (err error) {
		again, existing, err = tx.CreateResponse(req)
		return err
	})
	if !existing || again.ID != r.ID || pos2 != pos1 {
		t.Fatalf("idempotent repeat: id %s existing=%v pos %v→%v; want %s, true, unchanged", again.ID, existing, pos1, pos2, r.ID)
	}
	// Same key, other body: conflict.
	_, err := s.Update(ctx, 1, func(tx *store.Tx) error {
		other := req
		other.RequestHash = "h2"
		_, _, err := tx.CreateResponse(other)
		return err
	})
	wantErr(t, "key reuse with another body", err, store.ErrConflict)
	// Same key under another API key: a new response.
	var scoped store.Response
	update(t, s, 1, func(tx *store.Tx) (err error) {
		other := req
		other.KeyScope = "key-b"
		scoped, existing, err = tx.CreateResponse(other)
		return err
	})
	if existing || scoped.ID == r.ID {
		t.Fatalf("same key, other scope: got %s existing=%v; want a new response", scoped.ID, existing)
	}
	byKey, err := s.ResponseByKey(ctx, "key-b", "idem-1")
	if err != nil || byKey.ID != scoped.ID {
		t.Fatalf("ResponseByKey = %s, %v; want %s", byKey.ID, err, scoped.ID)
	}

	// Update: status and data change, the rest stays.
	update(t, s, 1, func(tx *store.Tx) error {
		_, err := tx.UpdateResponse(store.Response{ID: r.ID, Status: "completed", Data: json.RawMessage(`{"object":"response","status":"completed","usage":{"total_tokens":7}}`)})
		return err
	})
	got, err := s.Response(ctx, r.ID)
	if err != nil {
		t.Fatalf("Response: %v", err)
	}
	if got.Status != "completed" || got.Model != "gpt-4.1-mini" || got.ConversationID != c.ID || got.IdempotencyKey != "idem-1" ||
		!got.CreatedAt.Equal(r.CreatedAt) || !strings.Contains(string(got.Data), `"total_tokens":7`) {
		t.Fatalf("after update: %+v", got)
	}

	// Chained response.
	var next store.Response
	update(t, s, 1, func(tx *store.Tx) (err error) {
		next, _, err = tx.CreateResponse(store.Response{Status: "completed", Model: "m", PreviousResponseID: r.ID, Data: json.RawMessage(`{}`)})
		return err
	})
	if got, _ := s.Response(ctx, next.ID); got.PreviousResponseID != r.ID {
		t.Fatalf("previous_response_id = %q, want %s", got.PreviousResponseID, r.ID)
	}

	update(t, s, 1, func(tx *store.Tx) error { return tx.DeleteResponse(r.ID) })
	_, err = s.Response(ctx, r.ID)
	wantErr(t, "get deleted response", err, store.ErrNotFound)
	_, err = s.Update(ctx, 1, func(tx *store.Tx) error {
		_, _, err := tx.CreateResponse(req)
		return err
	})
	wantErr(t, "key of a deleted response", err, store.ErrConflict)
	_, err = s.Update(ctx, 1, func(tx *store.Tx) error {
		_, err := tx.UpdateResponse(store.Response{ID: "resp_missing", Status: "completed", Data: json.RawMessage(`{}`)})
		return err
	})
	wantErr(t, "update missing response", err, store.ErrNotFound)
	_, err = s.Update(ctx, 1, func(tx *store.Tx) error {
		_, _, err := tx.CreateResponse(store.Response{Model: "m", Data: json.RawMessage(`{}`)})
		return err
	})
	wantErr(t, "response without status", err, store.ErrInvalid)
}

func testAgentVersions(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	put := func(name, version, hash string) (store.AgentVersion, bool, error) {
		var a store.AgentVersion
		var applied bool
		_, err := s.Update(ctx, 1, func(tx *store.Tx) (err error) {
			a, applied, err = tx.PutAgentVersion(store.AgentVersion{Name: name, Version: version, Hash: hash, Definition: json.RawMessage(`{"model":"gpt-4.1-mini"}`)})
			return err
		})
		return a, applied, err
	}
	a1, applied, err := put("support", "1", "sha256:aa")
	if err != nil || !applied || a1.Seq == 0 {
		t.Fatalf("put v1 = %+v applied=%v err=%v", a1, applied, err)
	}
	before := position(t, s)
	if _, applied, err := put("support", "1", "sha256:aa"); err != nil || applied {
		t.Fatalf("repeat v1: applied=%v err=%v; want a no-op", applied, err)
	}
	if after := position(t, s); after != before {
		t.Fatalf("repeat wrote events: %v → %v", before, after)
	}
	_, _, err = put("support", "1", "sha256:bb")
	wantErr(t, "same version, other hash", err, store.ErrConflict)
	if _, _, err := put("support", "2", "sha256:cc"); err != nil {
		t.Fatalf("put v2: %v", err)
	}
	latest, err := s.AgentVersion(ctx, "support", "")
	if err != nil || latest.Version != "2" {
		t.Fatalf("latest = %+v, %v; want version 2", latest, err)
	}
	v1, err := s.AgentVersion(ctx, "support", "1")
	if err != nil || v1.Hash != "sha256:aa" || !v1.AppliedAt.Equal(a1.AppliedAt) {
		t.Fatalf("v1 = %+v, %v", v1, err)
	}
	_, err = s.AgentVersion(ctx, "nobody", "")
	wantErr(t, "missing agent", err, store.ErrNotFound)
	all, err := s.AgentVersions(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("AgentVersions = %d, %v; want 2", len(all), err)
	}
	_, _, err = put("support", "", "sha256:dd")
	wantErr(t, "empty version", err, store.ErrInvalid)
}

func testEpochAndRole(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	create := func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{})
		return err
	}
	for _, ep := range []int64{0, 2} {
		_, err := s.Update(ctx, ep, create)
		wantErr(t, fmt.Sprint("write with epoch ", ep), err, store.ErrStaleEpoch)
		if ee, ok := errors.AsType[*store.EpochError](err); !ok || ee.Store != 1 || ee.Got != ep {
			t.Fatalf("EpochError = %+v", ee)
		}
	}
	if err := s.Fence(ctx, 1); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	if err := s.NotePrimary(ctx, "centralus", 2); err != nil {
		t.Fatalf("NotePrimary: %v", err)
	}
	_, err := s.Update(ctx, 1, create)
	wantErr(t, "write to fenced", err, store.ErrNotPrimary)
	np, ok := errors.AsType[*store.NotPrimaryError](err)
	if !ok || np.Role != store.RoleFenced || np.Epoch != 1 || np.KnownEpoch != 2 || np.KnownPrimary != "centralus" {
		t.Fatalf("NotPrimaryError = %+v", np)
	}
	// Reads keep working in every role.
	if _, err := s.Digest(ctx); err != nil {
		t.Fatalf("read on fenced store: %v", err)
	}
	if d := digest(t, s); d.Conversations != 0 {
		t.Fatalf("refused writes left %d conversations", d.Conversations)
	}
}

func testJournal(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	c := createConv(t, s, 1, nil)
	// One transaction, several changes: consecutive seqs, one commit.
	pos := update(t, s, 1, func(tx *store.Tx) error {
		if _, err := tx.AppendItems(c.ID, []store.Item{msg("user", "a"), msg("assistant", "b")}); err != nil {
			return err
		}
		_, _, err := tx.CreateResponse(store.Response{Status: "completed", Model: "m", ConversationID: c.ID, Data: json.RawMessage(`{}`)})
		return err
	})
	if pos != (store.Position{Seq: 4, Epoch: 1}) {
		t.Fatalf("position = %+v, want seq 4 epoch 1", pos)
	}
	// A function error rolls everything back.
	boom := errors.New("boom")
	_, err := s.Update(ctx, 1, func(tx *store.Tx) error {
		if _, err := tx.AppendItems(c.ID, []store.Item{msg("user", "lost")}); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "failing update", err, boom)
	if p := position(t, s); p.Seq != 4 {
		t.Fatalf("position after rollback = %+v", p)
	}
	evs, err := s.ReadEvents(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	kinds := []string{store.KindConversationCreate, store.KindItemAdd, store.KindItemAdd, store.KindResponsePut}
	if len(evs) != len(kinds) {
		t.Fatalf("%d events, want %d", len(evs), len(kinds))
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) || ev.Epoch != 1 || ev.Kind != kinds[i] || ev.At.IsZero() {
			t.Fatalf("event %d = seq %d epoch %d kind %s", i, ev.Seq, ev.Epoch, ev.Kind)
		}
		if err := store.ValidateEvent(ev); err != nil {
			t.Fatalf("event %d does not validate: %v", ev.Seq, err)
		}
	}
	if evs, _ := s.ReadEvents(ctx, 2, 1); len(evs) != 1 || evs[0].Seq != 3 {
		t.Fatalf("ReadEvents(2, 1) = %v", evs)
	}
	if evs, _ := s.ReadEvents(ctx, 4, 10); len(evs) != 0 {
		t.Fatalf("ReadEvents past the end = %d events", len(evs))
	}
}

func testGuard(t *testing.T, open Opener) {
	s := primary(t, open)
	ctx := t.Context()
	lease := errors.New("write lease expired")
	type key struct{}
	var calls int
	var sawCtx bool
	s.SetGuard(func(ctx context.Context) error {
		calls++
		sawCtx = ctx.Value(key{}) == "turn-1"
		return lease
	})
	_, err := s.Update(context.WithValue(ctx, key{}, "turn-1"), 1, func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{ID: "conv_guarded"})
		return err
	})
	wantErr(t, "guarded write", err, store.ErrGuard)
	wantErr(t, "guarded write", err, lease)
	if calls != 1 || !sawCtx {
		t.Fatalf("guard calls = %d, saw caller ctx = %v", calls, sawCtx)
	}
	_, err = s.Conversation(ctx, "conv_guarded")
	wantErr(t, "conversation of a refused write", err, store.ErrNotFound)
	if p := position(t, s); p.Seq != 0 {
		t.Fatalf("position after guard refusal = %+v", p)
	}
	s.SetGuard(func(context.Context) error { return nil })
	createConv(t, s, 1, nil)
	s.SetGuard(nil)
	createConv(t, s, 1, nil)
	if p := position(t, s); p.Seq != 2 {
		t.Fatalf("position = %+v, want 2", p)
	}
}

func testConcurrentAppends(t *testing.T, open Opener) {
	s := primary(t, open)
	c := createConv(t, s, 1, nil)
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.Update(t.Context(), 1, func(tx *store.Tx) error {
					_, err := tx.AppendItems(c.ID, []store.Item{msg("user", fmt.Sprint(w, "-", i))})
					return err
				})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent append: %v", err)
		}
	}
	items, err := s.Items(t.Context(), c.ID)
	if err != nil || len(items) != writers*each {
		t.Fatalf("Items = %d, %v; want %d", len(items), err, writers*each)
	}
	for i, it := range items {
		if it.Seq != int64(i+1) {
			t.Fatalf("item %d has seq %d: not gap-free", i, it.Seq)
		}
	}
	evs, _ := s.ReadEvents(t.Context(), 0, 1000)
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("journal event %d has seq %d: not gap-free", i, ev.Seq)
		}
	}
}

// populate writes one of everything to a primary of the given epoch.
func populate(t *testing.T, s Store, epoch int64, tag string) {
	t.Helper()
	c := createConv(t, s, epoch, map[string]string{"tag": tag})
	items := appendItems(t, s, epoch, c.ID, msg("user", tag+" <hello> & bye"), msg("assistant", "hi"))
	update(t, s, epoch, func(tx *store.Tx) error {
		r, _, err := tx.CreateResponse(store.Response{Status: "in_progress", Model: "m", ConversationID: c.ID, Data: json.RawMessage(`{"a": 1}`), IdempotencyKey: tag, RequestHash: "h"})
		if err != nil {
			return err
		}
		if _, err := tx.UpdateResponse(store.Response{ID: r.ID, Status: "completed", Data: json.RawMessage(`{"a": 2}`)}); err != nil {
			return err
		}
		if _, err := tx.UpdateConversation(c.ID, map[string]string{"tag": tag, "n": "2"}); err != nil {
			return err
		}
		if err := tx.DeleteItem(c.ID, items[1].ID); err != nil {
			return err
		}
		_, _, err = tx.PutAgentVersion(store.AgentVersion{Name: "agent-" + tag, Version: "1", Hash: "h", Definition: json.RawMessage(`{"x":true}`)})
		return err
	})
}

func testApply(t *testing.T, open Opener) {
	p := primary(t, open)
	sb := open(t)
	populate(t, p, 1, "one")
	c2 := createConv(t, p, 1, nil)
	update(t, p, 1, func(tx *store.Tx) error { return tx.DeleteConversation(c2.ID) })

	pos := ship(t, p, sb)
	if pos != position(t, p) {
		t.Fatalf("standby at %+v, primary at %+v", pos, position(t, p))
	}
	if dp, ds := digest(t, p), digest(t, sb); dp != ds {
		t.Fatalf("digests differ after apply:\nprimary %+v\nstandby %+v", dp, ds)
	}
	m := meta(t, sb)
	if m.Role != store.RoleStandby || m.Epoch != 1 || len(m.History) != 1 || m.History[0] != (store.EpochStart{Epoch: 1, FirstSeq: 1}) {
		t.Fatalf("standby meta = %+v", m)
	}
	pe, _ := p.ReadEvents(t.Context(), 0, 1000)
	se, _ := sb.ReadEvents(t.Context(), 0, 1000)
	if len(pe) != len(se) {
		t.Fatalf("journals: %d vs %d events", len(pe), len(se))
	}
	for i := range pe {
		if pe[i].Seq != se[i].Seq || pe[i].Epoch != se[i].Epoch || pe[i].Kind != se[i].Kind || !pe[i].At.Equal(se[i].At) || string(pe[i].Payload) != string(se[i].Payload) {
			t.Fatalf("event %d differs:\n%+v\n%+v", i, pe[i], se[i])
		}
	}

	// Applying the same events again is a no-op.
	again, err := sb.ApplyEvents(t.Context(), pe)
	if err != nil || again != pos {
		t.Fatalf("re-apply = %+v, %v; want %+v", again, err, pos)
	}
	// Reads work on the standby.
	if _, err := sb.Conversation(t.Context(), c2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted conversation on standby: %v", err)
	}
	// An empty batch is fine.
	if got, err := sb.ApplyEvents(t.Context(), nil); err != nil || got != pos {
		t.Fatalf("empty apply = %+v, %v", got, err)
	}
}

func testApplyRefusals(t *testing.T, open Opener) {
	p := primary(t, open)
	populate(t, p, 1, "one")
	evs, _ := p.ReadEvents(t.Context(), 0, 1000)
	n := len(evs)

	t.Run("gap", func(t *testing.T) {
		sb := open(t)
		_, err := sb.ApplyEvents(t.Context(), evs[1:])
		wantErr(t, "apply with gap", err, store.ErrGap)
		if p := position(t, sb); p.Seq != 0 {
			t.Fatalf("position after gap = %+v", p)
		}
	})
	t.Run("atomic batch", func(t *testing.T) {
		sb := open(t)
		bad := append([]store.Event(nil), evs...)
		bad[n-1].Payload = json.RawMessage(`{"garbage":1}`)
		_, err := sb.ApplyEvents(t.Context(), bad)
		wantErr(t, "apply bad payload", err, store.ErrInvalid)
		if p := position(t, sb); p.Seq != 0 {
			t.Fatalf("half a batch applied: position %+v", p)
		}
		if d := digest(t, sb); d.Conversations != 0 {
			t.Fatalf("half a batch applied: %+v", d)
		}
	})
	t.Run("stale epoch", func(t *testing.T) {
		sb := open(t)
		ship(t, p, sb)
		// The standby learns epoch 2 began at n+1: an epoch-1 event there
		// comes from a dead branch.
		if _, err := sb.Rejoin(t.Context(), []store.EpochStart{{Epoch: 1, FirstSeq: 1}, {Epoch: 2, FirstSeq: int64(n + 1)}}); err != nil {
			t.Fatalf("Rejoin: %v", err)
		}
		old := store.Event{Epoch: 1, Seq: int64(n + 1), Kind: store.KindConversationDelete, At: time.Now(), Payload: json.RawMessage(`{"id":"conv_x"}`)}
		_, err := sb.ApplyEvents(t.Context(), []store.Event{old})
		wantErr(t, "apply old epoch", err, store.ErrStaleEpoch)
	})
	t.Run("epoch goes backwards", func(t *testing.T) {
		sb := open(t)
		first := evs[0]
		first.Epoch = 3
		if _, err := sb.ApplyEvents(t.Context(), []store.Event{first}); err != nil {
			t.Fatalf("apply epoch 3: %v", err)
		}
		second := evs[1]
		_, err := sb.ApplyEvents(t.Context(), []store.Event{second})
		wantErr(t, "apply epoch 1 after 3", err, store.ErrStaleEpoch)
		if m := meta(t, sb); m.Epoch != 3 || len(m.History) != 1 || m.History[0] != (store.EpochStart{Epoch: 3, FirstSeq: 1}) {
			t.Fatalf("meta after new epoch = %+v", m)
		}
	})
	t.Run("on primary", func(t *testing.T) {
		other := primary(t, open)
		_, err := other.ApplyEvents(t.Context(), evs)
		wantErr(t, "apply on primary", err, store.ErrConflict)
	})
	t.Run("diverged skip", func(t *testing.T) {
		sb := open(t)
		ship(t, p, sb)
		e := evs[0]
		e.Epoch = 2
		_, err := sb.ApplyEvents(t.Context(), []store.Event{e})
		wantErr(t, "re-apply seq 1 with another epoch", err, store.ErrConflict)
	})
}

func testPromoteFence(t *testing.T, open Opener) {
	ctx := t.Context()
	p := primary(t, open)
	sb := open(t)
	populate(t, p, 1, "one")
	pos := ship(t, p, sb)

	// Promote the standby to epoch 2: the fork point is the next seq.
	if err := sb.Promote(ctx, 2); err != nil {
		t.Fatalf("Promote(2): %v", err)
	}
	if err := sb.Promote(ctx, 2); err != nil {
		t.Fatalf("Promote(2) again: %v (want idempotent)", err)
	}
	m := meta(t, sb)
	want := []store.EpochStart{{Epoch: 1, FirstSeq: 1}, {Epoch: 2, FirstSeq: pos.Seq + 1}}
	if m.Role != store.RolePrimary || m.Epoch != 2 || fmt.Sprint(m.History) != fmt.Sprint(want) {
		t.Fatalf("promoted meta = %+v, want primary epoch 2 history %v", m, want)
	}
	if err := sb.Promote(ctx, 3); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Promote(3) on a primary: %v, want ErrConflict", err)
	}
	np := update(t, sb, 2, func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{})
		return err
	})
	if np != (store.Position{Seq: pos.Seq + 1, Epoch: 2}) {
		t.Fatalf("first write of epoch 2 at %+v", np)
	}
	_, err := sb.Update(ctx, 1, func(tx *store.Tx) error { return nil })
	wantErr(t, "old epoch on new primary", err, store.ErrStaleEpoch)

	// Promote refuses epochs that are not newer.
	other := open(t)
	ship(t, p, other)
	for _, ep := range []int64{0, 1} {
		if err := other.Promote(ctx, ep); !errors.Is(err, store.ErrStaleEpoch) {
			t.Fatalf("Promote(%d) on a standby of epoch 1: %v, want ErrStaleEpoch", ep, err)
		}
	}
	// A fence older than the store's epoch is refused; the store keeps
	// writing.
	if err := sb.Fence(ctx, 1); !errors.Is(err, store.ErrStaleEpoch) {
		t.Fatalf("Fence(1) on primary of epoch 2: %v", err)
	}
	update(t, sb, 2, func(tx *store.Tx) error { return nil })

	// Fencing the old primary with the new epoch stops its writes and is
	// idempotent.
	for range 2 {
		if err := p.Fence(ctx, 2); err != nil {
			t.Fatalf("Fence(2): %v", err)
		}
	}
	m = meta(t, p)
	if m.Role != store.RoleFenced || m.Epoch != 1 || m.KnownEpoch != 2 {
		t.Fatalf("fenced meta = %+v", m)
	}
	_, err = p.Update(ctx, 1, func(tx *store.Tx) error { return nil })
	wantErr(t, "write to fenced", err, store.ErrNotPrimary)
	// Fencing a standby changes nothing but what it knows.
	if err := other.Fence(ctx, 2); err != nil {
		t.Fatalf("Fence standby: %v", err)
	}
	if m := meta(t, other); m.Role != store.RoleStandby || m.KnownEpoch != 2 {
		t.Fatalf("fenced standby meta = %+v", m)
	}
}

func testRejoin(t *testing.T, open Opener) {
	ctx := t.Context()
	a := primary(t, open) // region A, primary of epoch 1
	b := open(t)          // region B, its standby
	populate(t, a, 1, "shared")
	forkPos := ship(t, a, b)

	// A keeps writing (async replication, or a partition) while B is
	// promoted: these events exist only on A.
	populate(t, a, 1, "lost")
	divergent, _ := a.ReadEvents(ctx, forkPos.Seq, 1000)
	if err := b.Promote(ctx, 2); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	populate(t, b, 2, "new")

	// A learns of epoch 2: fence, rejoin with B's history, catch up.
	if err := a.Fence(ctx, 2); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	bm := meta(t, b)
	rep, err := a.Rejoin(ctx, bm.History)
	if err != nil {
		t.Fatalf("Rejoin: %v", err)
	}
	if rep.ForkSeq != forkPos.Seq+1 || rep.Quarantined != len(divergent) || rep.Epoch != 2 {
		t.Fatalf("Rejoin report = %+v, want fork %d, %d quarantined, epoch 2", rep, forkPos.Seq+1, len(divergent))
	}
	am := meta(t, a)
	if am.Role != store.RoleStandby || am.Epoch != 2 || am.Position != forkPos || fmt.Sprint(am.History) != fmt.Sprint(bm.History) {
		t.Fatalf("rejoined meta = %+v, want standby epoch 2 at %+v history %v", am, forkPos, bm.History)
	}
	q, err := a.Quarantine(ctx)
	if err != nil || len(q) != len(divergent) {
		t.Fatalf("Quarantine = %d events, %v; want %d", len(q), err, len(divergent))
	}
	for i, e := range q {
		d := divergent[i]
		if e.Seq != d.Seq || e.Epoch != 1 || e.Kind != d.Kind || string(e.Payload) != string(d.Payload) || e.NewEpoch != 2 || e.QuarantinedAt.IsZero() {
			t.Fatalf("quarantined %d = %+v, want %+v", i, e, d)
		}
	}
	// The lost conversation is gone from A's state, still in quarantine.
	if d := digest(t, a); d.Conversations != 1 || d.AgentVersions != 1 {
		t.Fatalf("state after rollback: %+v, want only the shared prefix", d)
	}

	ship(t, b, a)
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Fatalf("after rejoin and catch-up digests differ:\nA %+v\nB %+v", da, db)
	}
	if pa, pb := position(t, a), position(t, b); pa != pb {
		t.Fatalf("positions %+v vs %+v", pa, pb)
	}
	// Rejoining again with the same history is a no-op for a standby.
	if rep, err := a.Rejoin(ctx, bm.History); err != nil || rep.Quarantined != 0 {
		t.Fatalf("second Rejoin = %+v, %v", rep, err)
	}
	if q, _ := a.Quarantine(ctx); len(q) != len(divergent) {
		t.Fatalf("quarantine after second rejoin: %d events", len(q))
	}

	// A rejoin with nothing divergent keeps everything.
	c := primary(t, open)
	populate(t, c, 1, "x")
	cpos := position(t, c)
	if err := c.Fence(ctx, 2); err != nil {
		t.Fatal(err)
	}
	rep, err = c.Rejoin(ctx, []store.EpochStart{{Epoch: 1, FirstSeq: 1}, {Epoch: 2, FirstSeq: cpos.Seq + 1}})
	if err != nil || rep.ForkSeq != 0 || rep.Quarantined != 0 || position(t, c) != cpos {
		t.Fatalf("clean rejoin = %+v, %v, position %+v", rep, err, position(t, c))
	}
}

func testRejoinRefusals(t *testing.T, open Opener) {
	ctx := t.Context()
	p := primary(t, open)
	h2 := []store.EpochStart{{Epoch: 1, FirstSeq: 1}, {Epoch: 2, FirstSeq: 1}}
	_, err := p.Rejoin(ctx, h2)
	wantErr(t, "rejoin an unfenced primary", err, store.ErrConflict)
	if err := p.Fence(ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, err = p.Rejoin(ctx, []store.EpochStart{{Epoch: 1, FirstSeq: 1}})
	wantErr(t, "rejoin own epoch", err, store.ErrStaleEpoch)
	for name, h := range map[string][]store.EpochStart{
		"empty":         nil,
		"not ascending": {{Epoch: 2, FirstSeq: 1}, {Epoch: 1, FirstSeq: 5}},
		"zero seq":      {{Epoch: 2, FirstSeq: 0}},
	} {
		_, err := p.Rejoin(ctx, h)
		wantErr(t, "rejoin "+name, err, store.ErrInvalid)
	}
	if m := meta(t, p); m.Role != store.RoleFenced {
		t.Fatalf("refused rejoins changed the role to %s", m.Role)
	}
}

func testCommitSignal(t *testing.T, open Opener) {
	s := primary(t, open)
	ch := s.CommitSignal()
	select {
	case <-ch:
		t.Fatal("signal closed before any commit")
	default:
	}
	createConv(t, s, 1, nil)
	select {
	case <-ch:
	default:
		t.Fatal("signal not closed by a commit")
	}
	next := s.CommitSignal()
	// A write that changes nothing does not signal.
	update(t, s, 1, func(tx *store.Tx) error { return nil })
	select {
	case <-next:
		t.Fatal("signal closed by an empty transaction")
	default:
	}
}
