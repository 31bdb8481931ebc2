package sqlite

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/storetest"
)

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "region.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t) })
}

func TestReopenKeepsStateAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	var conv store.Conversation
	if _, err := s.Update(t.Context(), 1, func(tx *store.Tx) (err error) {
		conv, err = tx.CreateConversation(store.Conversation{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.read.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, SchemaVersion())
	}
	m, err := s.Meta(t.Context())
	if err != nil || m.Role != store.RolePrimary || m.Epoch != 1 || m.Position.Seq != 1 {
		t.Fatalf("meta after reopen = %+v, %v", m, err)
	}
	if _, err := s.Conversation(t.Context(), conv.ID); err != nil {
		t.Fatalf("conversation after reopen: %v", err)
	}
	var mode string
	if err := s.write.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "a.db?mode=memory"} {
		if _, err := Open(p, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// BenchmarkAppendItem measures one journaled append of an item on a
// primary: one transaction, one fsync.
func BenchmarkAppendItem(b *testing.B) {
	s := open(b)
	ctx := b.Context()
	if err := s.Promote(ctx, 1); err != nil {
		b.Fatal(err)
	}
	var conv store.Conversation
	if _, err := s.Update(ctx, 1, func(tx *store.Tx) (err error) {
		conv, err = tx.CreateConversation(store.Conversation{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	item := store.Item{Type: store.ItemMessage, Role: "user", Data: json.RawMessage(`{"type":"message","role":"user","content":[{"type":"input_text","text":"What is the weather in Paris today?"}]}`)}
	for b.Loop() {
		if _, err := s.Update(ctx, 1, func(tx *store.Tx) error {
			_, err := tx.AppendItems(conv.ID, []store.Item{item})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyBatch100 measures a standby applying a batch of 100
// item events in one transaction.
func BenchmarkApplyBatch100(b *testing.B) {
	s := open(b)
	ctx := b.Context()
	at := time.Now()
	seq := int64(1)
	create := store.Event{Epoch: 1, Seq: seq, Kind: store.KindConversationCreate, At: at,
		Payload: json.RawMessage(`{"id":"conv_bench","created_at":"2026-01-01T00:00:00Z","metadata":{}}`)}
	if _, err := s.ApplyEvents(ctx, []store.Event{create}); err != nil {
		b.Fatal(err)
	}
	batch := make([]store.Event, 100)
	for b.Loop() {
		for i := range batch {
			seq++
			batch[i] = store.Event{Epoch: 1, Seq: seq, Kind: store.KindItemAdd, At: at, Payload: json.RawMessage(fmt.Sprintf(
				`{"conversation_id":"conv_bench","seq":%d,"id":"msg_%d","type":"message","role":"user","data":{"type":"message","role":"user","content":[{"type":"input_text","text":"hello"}]},"created_at":"2026-01-01T00:00:00Z"}`,
				seq-1, seq))}
		}
		if _, err := s.ApplyEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
