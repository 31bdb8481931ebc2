package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/sqlite"
	"github.com/understudy/understudy/internal/store/storetest"
	"github.com/understudy/understudy/internal/testutil/pgtest"
)

// One server per test binary; each test gets its own database.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openDSN(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t testing.TB) *Store {
	t.Helper()
	return openDSN(t, pgtest.Shared(t).NewDatabase(t), Options{})
}

// The contract holds in both replication modes: journal (Options{}) and,
// on a server that is not in recovery, engine (Streaming).
func TestContract(t *testing.T) {
	t.Run("journal", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Store { return open(t) })
	})
	t.Run("engine", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Store {
			return openDSN(t, pgtest.Shared(t).NewDatabase(t), Options{Streaming: true})
		})
	})
}

func update(t testing.TB, s *Store, fn func(*store.Tx) error) store.Position {
	t.Helper()
	pos, err := s.Update(t.Context(), 1, fn)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return pos
}

func createConv(t testing.TB, s *Store) store.Conversation {
	t.Helper()
	var c store.Conversation
	update(t, s, func(tx *store.Tx) (err error) {
		c, err = tx.CreateConversation(store.Conversation{})
		return err
	})
	return c
}

func TestReopenKeepsStateAndSchema(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	s, err := Open(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	conv := createConv(t, s)
	s.Close()

	s = openDSN(t, dsn, Options{})
	var n int
	if err := s.read.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", n, err, SchemaVersion())
	}
	m, err := s.Meta(t.Context())
	if err != nil || m.Role != store.RolePrimary || m.Epoch != 1 || m.Position.Seq != 1 {
		t.Fatalf("meta after reopen = %+v, %v", m, err)
	}
	if _, err := s.Conversation(t.Context(), conv.ID); err != nil {
		t.Fatalf("conversation after reopen: %v", err)
	}
}

// Gateways starting at once on a new database: one migrates, the others
// wait on the advisory lock and find the schema done.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn, Options{MaxConns: 2}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	var versions, metaRows int
	if err := stores[0].read.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil || versions != SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", versions, err, SchemaVersion())
	}
	if err := stores[0].read.QueryRowContext(t.Context(), "SELECT count(*) FROM meta").Scan(&metaRows); err != nil || metaRows != 1 {
		t.Fatalf("meta rows = %d, %v; want 1", metaRows, err)
	}
	// Every process sees the one store.
	if err := stores[1].Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if m, err := s.Meta(t.Context()); err != nil || m.Role != store.RolePrimary {
			t.Fatalf("store %d meta = %+v, %v", i, m, err)
		}
	}
}

func TestPoolLimits(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	for _, tc := range []struct{ max, write, read int }{
		{0, 5, 5}, {1, 1, 1}, {2, 1, 1}, {5, 2, 3}, {10, 5, 5},
	} {
		s := openDSN(t, dsn, Options{MaxConns: tc.max})
		if w, r := s.write.Stats().MaxOpenConnections, s.read.Stats().MaxOpenConnections; w != tc.write || r != tc.read {
			t.Errorf("MaxConns %d: write %d read %d; want %d %d", tc.max, w, r, tc.write, tc.read)
		}
		s.Close()
	}
	// Under load the server sees no more connections from one store than
	// MaxConns.
	s := openDSN(t, dsn, Options{MaxConns: 4})
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	c := createConv(t, s)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			s.Update(t.Context(), 1, func(tx *store.Tx) error {
				_, err := tx.AppendItems(c.ID, []store.Item{msg("x")})
				return err
			})
			s.Items(t.Context(), c.ID)
		})
	}
	wg.Wait()
	if st := s.write.Stats().OpenConnections + s.read.Stats().OpenConnections; st > 4 {
		t.Fatalf("open connections %d > MaxConns 4", st)
	}
	if items, err := s.Items(t.Context(), c.ID); err != nil || len(items) != 16 {
		t.Fatalf("items = %d, %v; want 16", len(items), err)
	}
}

// The session settings the design relies on are the store's own, whatever
// the database's defaults: a database set to SERIALIZABLE would make
// writers waiting on the meta row fail instead of queueing.
func TestSessionSettings(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.NewDatabase(t)
	admin, err := srv.Open("postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	if _, err := admin.ExecContext(t.Context(), "ALTER DATABASE "+db+" SET default_transaction_isolation = 'serializable'"); err != nil {
		t.Fatal(err)
	}
	s := openDSN(t, dsn, Options{MaxConns: 8})
	for _, tc := range []struct {
		pool    string
		setting string
		want    string
	}{
		{"write", "transaction_isolation", "read committed"},
		{"write", "idle_in_transaction_session_timeout", "10s"},
		{"write", "application_name", "understudy"},
		{"read", "transaction_isolation", "repeatable read"},
		{"read", "transaction_read_only", "on"},
	} {
		db := map[string]*sql.DB{"write": s.write, "read": s.read}[tc.pool]
		var got string
		if err := db.QueryRowContext(t.Context(), "SHOW "+tc.setting).Scan(&got); err != nil || got != tc.want {
			t.Errorf("%s pool: %s = %q, %v; want %q", tc.pool, tc.setting, got, err, tc.want)
		}
	}
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	other := openDSN(t, dsn, Options{MaxConns: 8})
	c := createConv(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			_, err := []*Store{s, other}[i%2].Update(t.Context(), 1, func(tx *store.Tx) error {
				_, err := tx.AppendItems(c.ID, []store.Item{msg("x")})
				return err
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent append on a SERIALIZABLE-by-default database: %v", err)
		}
	}
}

func msg(text string) store.Item {
	data, _ := json.Marshal(map[string]any{"type": "message", "role": "user",
		"content": []map[string]string{{"type": "input_text", "text": text}}})
	return store.Item{Type: store.ItemMessage, Role: "user", Data: data}
}

// Several gateway processes (separate pools) writing to the same
// conversations at once: the journal stays gap-free, every
// conversation's items are numbered 1, 2, 3… in journal order, and each
// writer's own appends keep their order.
func TestConcurrentWriters(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	const procs, writersPer, appends, convs = 4, 3, 8, 3
	stores := make([]*Store, procs)
	for i := range stores {
		stores[i] = openDSN(t, dsn, Options{MaxConns: 4})
	}
	if err := stores[0].Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, convs)
	for i := range ids {
		ids[i] = createConv(t, stores[i%procs]).ID
	}
	type key struct{ writer, conv int }
	var wg sync.WaitGroup
	errs := make(chan error, procs*writersPer*appends)
	for p := range procs {
		for w := range writersPer {
			writer := p*writersPer + w
			wg.Go(func() {
				for i := range appends {
					conv := (writer + i) % convs
					// Two items per transaction: they must stay adjacent.
					_, err := stores[p].Update(t.Context(), 1, func(tx *store.Tx) error {
						_, err := tx.AppendItems(ids[conv], []store.Item{
							msg(fmt.Sprintf("w%d c%d i%d a", writer, conv, i)),
							msg(fmt.Sprintf("w%d c%d i%d b", writer, conv, i)),
						})
						return err
					})
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("append: %v", err)
		}
	}

	s := stores[procs-1]
	evs, err := s.ReadEvents(t.Context(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := convs + procs*writersPer*appends*2
	if len(evs) != wantEvents {
		t.Fatalf("journal has %d events, want %d", len(evs), wantEvents)
	}
	journalPos := map[string]int64{} // item ID → journal seq
	for i, ev := range evs {
		if ev.Seq != int64(i+1) || ev.Epoch != 1 {
			t.Fatalf("journal event %d is seq %d epoch %d: not gap-free", i, ev.Seq, ev.Epoch)
		}
		if ev.Kind == store.KindItemAdd {
			var p struct{ ID string }
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				t.Fatal(err)
			}
			journalPos[p.ID] = ev.Seq
		}
	}
	total := 0
	for c, id := range ids {
		items, err := s.Items(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		total += len(items)
		last := map[int]int{} // writer → its last append index here
		for i, it := range items {
			if it.Seq != int64(i+1) {
				t.Fatalf("conversation %d item %d has seq %d: not gap-free", c, i, it.Seq)
			}
			if i > 0 && journalPos[it.ID] <= journalPos[items[i-1].ID] {
				t.Fatalf("conversation %d: item seq order differs from journal order at %d", c, it.Seq)
			}
			var text struct {
				Content []struct{ Text string }
			}
			json.Unmarshal(it.Data, &text)
			var w, cc, n int
			var part string
			if _, err := fmt.Sscanf(text.Content[0].Text, "w%d c%d i%d %s", &w, &cc, &n, &part); err != nil || cc != c {
				t.Fatalf("item %q in conversation %d", text.Content[0].Text, c)
			}
			switch part {
			case "a":
				if prev, ok := last[w]; ok && prev >= n {
					t.Fatalf("conversation %d: writer %d append %d after its append %d", c, w, n, prev)
				}
				last[w] = n
			case "b":
				if prevText := string(items[i-1].Data); !strings.Contains(prevText, fmt.Sprintf("w%d c%d i%d a", w, c, n)) {
					t.Fatalf("conversation %d: the two items of one append are not adjacent at seq %d", c, it.Seq)
				}
			}
		}
	}
	if total != procs*writersPer*appends*2 {
		t.Fatalf("items = %d, want %d", total, procs*writersPer*appends*2)
	}
}

// The journal of a postgres primary applied to a sqlite standby gives the
// same state, byte for byte: one engine, one apply path, and "C" collation
// for the digest's order.
func TestDigestMatchesSqlite(t *testing.T) {
	pg := open(t)
	if err := pg.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	md := map[string]string{"Zeta": "1", "alpha": "2", "été": "3", "_x": "4"}
	for _, id := range []string{"conv_B", "conv_a", "conv_é", "conv_Z"} {
		update(t, pg, func(tx *store.Tx) error {
			if _, err := tx.CreateConversation(store.Conversation{ID: id, Metadata: md}); err != nil {
				return err
			}
			_, err := tx.AppendItems(id, []store.Item{msg("héllo " + id), msg("second")})
			return err
		})
	}
	for _, name := range []string{"b-agent", "A-agent", "a-agent"} {
		update(t, pg, func(tx *store.Tx) error {
			_, _, err := tx.PutAgentVersion(store.AgentVersion{Name: name, Version: "v1", Hash: "h", Definition: json.RawMessage(`{"x":1}`)})
			return err
		})
	}
	update(t, pg, func(tx *store.Tx) error {
		_, _, err := tx.CreateResponse(store.Response{ID: "resp_Q", Status: "completed", Model: "m", Data: json.RawMessage(`{"a":[1,2]}`), KeyScope: "k", IdempotencyKey: "i", RequestHash: "h"})
		return err
	})
	lite, err := sqlite.Open(filepath.Join(t.TempDir(), "standby.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	evs, err := pg.ReadEvents(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lite.ApplyEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	dp, err := pg.Digest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dl, err := lite.Digest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dp != dl || dp.Conversations != 4 || dp.Items != 8 {
		t.Fatalf("digests differ or wrong:\npostgres %+v\nsqlite   %+v", dp, dl)
	}
}

func TestNULInText(t *testing.T) {
	s := open(t)
	if err := s.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	_, err := s.Update(t.Context(), 1, func(tx *store.Tx) error {
		_, _, err := tx.CreateResponse(store.Response{Status: "completed", Model: "gpt\x00x", Data: json.RawMessage(`{}`)})
		return err
	})
	if !errors.Is(err, store.ErrInvalid) || strings.Contains(err.Error(), "SQLSTATE") {
		t.Fatalf("response with a NUL in its model: %v; want ErrInvalid without the server's text", err)
	}
	if p, _ := s.Position(t.Context()); p.Seq != 0 {
		t.Fatalf("position %+v after a refused write", p)
	}
}

func TestMapError(t *testing.T) {
	other := errors.New("boom")
	for _, tc := range []struct {
		name   string
		err    error
		target error
	}{
		{"read only", fmt.Errorf("read meta: %w", &pgconn.PgError{Code: "25006", Message: "cannot execute SELECT FOR UPDATE in a read-only transaction"}), store.ErrNotPrimary},
		{"nul", &pgconn.PgError{Code: "22021"}, store.ErrInvalid},
		{"untranslatable", &pgconn.PgError{Code: "22P05"}, store.ErrInvalid},
		{"unique violation stays", &pgconn.PgError{Code: "23505"}, nil},
		{"not a server error", other, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mapError(tc.err)
			if tc.target == nil {
				if got != tc.err {
					t.Fatalf("mapError changed %v into %v", tc.err, got)
				}
				return
			}
			if !errors.Is(got, tc.target) {
				t.Fatalf("mapError(%v) = %v; want it to match %v", tc.err, got, tc.target)
			}
			if _, ok := errors.AsType[*pgconn.PgError](tc.err); ok {
				if _, ok := errors.AsType[*pgconn.PgError](got); !ok {
					t.Fatalf("mapError lost the server error")
				}
			}
		})
	}
}

// A region on an engine standby: the store opens (the schema streamed from
// the primary), serves reads, and refuses every write with ErrNotPrimary.
func TestHotStandbyRefusesWrites(t *testing.T) {
	// A server of its own: a base backup of the shared one would copy
	// every other test's database.
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.NewDatabase(t)
	bare := srv.NewDatabase(t) // no store schema
	p := openDSN(t, dsn, Options{})
	if err := p.Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	conv := createConv(t, p)

	sb := pgtest.StartStandby(t, srv, "pgstore_standby", pgtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := srv.CatchUp(ctx, sb); err != nil {
		t.Fatal(err)
	}
	standbyDSN := func(primaryDSN string) string {
		return strings.Replace(primaryDSN, fmt.Sprintf(":%d/", srv.Port), fmt.Sprintf(":%d/", sb.Port), 1)
	}
	s := openDSN(t, standbyDSN(dsn), Options{})
	if _, err := s.Conversation(t.Context(), conv.ID); err != nil {
		t.Fatalf("read on standby: %v", err)
	}
	if m, err := s.Meta(t.Context()); err != nil || m.Position.Seq != 1 {
		t.Fatalf("meta on standby = %+v, %v", m, err)
	}
	// The meta row says primary (it streamed from the primary): it is the
	// read-only database that refuses.
	_, err := s.Update(t.Context(), 1, func(tx *store.Tx) error {
		_, err := tx.CreateConversation(store.Conversation{})
		return err
	})
	if !errors.Is(err, store.ErrNotPrimary) {
		t.Fatalf("write on standby: %v; want ErrNotPrimary", err)
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "25006" {
		t.Fatalf("write on standby: %v; want the SQLSTATE 25006 underneath", err)
	}
	for name, fn := range map[string]func() error{
		"Promote":     func() error { return s.Promote(t.Context(), 2) },
		"Fence":       func() error { return s.Fence(t.Context(), 2) },
		"NotePrimary": func() error { return s.NotePrimary(t.Context(), "other", 2) },
	} {
		if err := fn(); !errors.Is(err, store.ErrNotPrimary) {
			t.Errorf("%s on standby: %v; want ErrNotPrimary", name, err)
		}
	}
	if _, err := Open(t.Context(), standbyDSN(bare), Options{}); err == nil || !strings.Contains(err.Error(), "hot standby without the store schema") {
		t.Fatalf("Open on a standby without schema: %v", err)
	}
}
