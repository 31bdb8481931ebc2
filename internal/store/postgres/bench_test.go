package postgres

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/testutil/pgtest"
)

var benchItem = store.Item{Type: store.ItemMessage, Role: "user", Data: json.RawMessage(`{"type":"message","role":"user","content":[{"type":"input_text","text":"What is the weather in Paris today?"}]}`)}

func appendOne(b *testing.B, s *Store, convID string) error {
	_, err := s.Update(b.Context(), 1, func(tx *store.Tx) error {
		_, err := tx.AppendItems(convID, []store.Item{benchItem})
		return err
	})
	return err
}

// BenchmarkAppendItem measures one journaled append of an item on a
// primary, one writer: lock the meta row, read the conversation and its
// last seq, insert the item and the event, update meta, commit (one WAL
// flush). The same operation as sqlite's BenchmarkAppendItem.
func BenchmarkAppendItem(b *testing.B) {
	s := open(b)
	if err := s.Promote(b.Context(), 1); err != nil {
		b.Fatal(err)
	}
	conv := createConv(b, s)
	for b.Loop() {
		if err := appendOne(b, s, conv.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendItemContended measures the cost of serialising writers
// on the meta row: each op is 8 appends to 8 conversations made at once
// by 8 writers spread over 4 stores (4 gateway processes' pools). Compare
// its items/s with BenchmarkAppendItem's 1/op.
func BenchmarkAppendItemContended(b *testing.B) {
	const procs, writers = 4, 8
	dsn := pgtest.Shared(b).NewDatabase(b)
	stores := make([]*Store, procs)
	for i := range stores {
		stores[i] = openDSN(b, dsn, Options{MaxConns: 4})
	}
	if err := stores[0].Promote(b.Context(), 1); err != nil {
		b.Fatal(err)
	}
	convs := make([]string, writers)
	for i := range convs {
		convs[i] = createConv(b, stores[0]).ID
	}
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				if err := appendOne(b, stores[w%procs], convs[w]); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*writers)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkApplyBatch100 measures a journal-mode standby applying a batch
// of 100 item events in one transaction (sqlite has the same benchmark).
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
