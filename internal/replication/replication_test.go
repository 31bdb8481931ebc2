package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/sqlite"
)

const secret = "s3cret-shared-between-regions"

// region is one region's store behind a real HTTP server that mounts the
// replication handler as the gateway does.
type region struct {
	st  *sqlite.Store
	srv *httptest.Server
}

func openStore(t testing.TB, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "region.db"), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newRegion(t testing.TB, opts sqlite.Options) *region {
	t.Helper()
	st := openStore(t, opts)
	h, err := NewHandler(st, secret, HandlerOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/replication/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &region{st: st, srv: srv}
}

func promote(t testing.TB, st *sqlite.Store, epoch int64) {
	t.Helper()
	if err := st.Promote(context.Background(), epoch); err != nil {
		t.Fatalf("Promote(%d): %v", epoch, err)
	}
}

// write creates a conversation with n items on a primary and returns the
// commit position.
func write(t testing.TB, st *sqlite.Store, epoch int64, n int) store.Position {
	t.Helper()
	pos, err := st.Update(context.Background(), epoch, func(tx *store.Tx) error {
		c, err := tx.CreateConversation(store.Conversation{Metadata: map[string]string{"n": fmt.Sprint(n)}})
		if err != nil {
			return err
		}
		items := make([]store.Item, n)
		for i := range items {
			items[i] = store.Item{Type: store.ItemMessage, Role: "user", Data: json.RawMessage(fmt.Sprintf(`{"type":"message","role":"user","content":[{"type":"input_text","text":"<%d> & more"}]}`, i))}
		}
		_, err = tx.AppendItems(c.ID, items)
		return err
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return pos
}

func newShipper(t testing.TB, st Source, peer string, mode Mode, opts Options) *Shipper {
	t.Helper()
	s, err := New(st, peer, secret, mode, opts, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// drain steps the shipper until it is idle.
func drain(t testing.TB, s *Shipper) {
	t.Helper()
	for range 1000 {
		idle, err := s.step(context.Background())
		if err != nil {
			t.Fatalf("step: %v", err)
		}
		if idle {
			return
		}
	}
	t.Fatal("shipper never idle")
}

func digest(t testing.TB, st *sqlite.Store) store.Digest {
	t.Helper()
	d, err := st.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func meta(t testing.TB, st *sqlite.Store) store.Meta {
	t.Helper()
	m, err := st.Meta(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestShipAndConverge(t *testing.T) {
	a := openStore(t, sqlite.Options{})
	promote(t, a, 1)
	b := newRegion(t, sqlite.Options{})
	for range 3 {
		write(t, a, 1, 4)
	}
	s := newShipper(t, a, b.srv.URL, Async, Options{BatchEvents: 4, From: "eastus2"})
	drain(t, s)
	if da, db := digest(t, a), digest(t, b.st); da != db || da.Items != 12 {
		t.Fatalf("not converged:\nA %+v\nB %+v", da, db)
	}
	st := s.Status()
	if st.AckedSeq != 15 || st.LocalSeq != 15 || st.LagEvents != 0 || st.LagSeconds != 0 || !st.Connected || st.Batches != 4 || st.Events != 15 {
		t.Fatalf("status = %+v", st)
	}
	// The standby learned who its primary is.
	_, err := b.st.Update(t.Context(), 1, func(*store.Tx) error { return nil })
	if np, ok := errors.AsType[*store.NotPrimaryError](err); !ok || np.KnownPrimary != "eastus2" || np.KnownEpoch != 1 {
		t.Fatalf("write on standby: %v", err)
	}
	// More writes, more shipping: still converged.
	write(t, a, 1, 2)
	drain(t, s)
	if da, db := digest(t, a), digest(t, b.st); da != db {
		t.Fatalf("not converged after second round")
	}
}

func TestSyncWaitsForStandby(t *testing.T) {
	a := openStore(t, sqlite.Options{})
	promote(t, a, 1)
	b := newRegion(t, sqlite.Options{})
	s := newShipper(t, a, b.srv.URL, Sync, Options{SyncTimeout: time.Minute})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pos := write(t, a, 1, 1)
		if err := s.WaitReplicated(t.Context(), pos.Seq); err != nil {
			t.Fatalf("write %d: WaitReplicated: %v", i, err)
		}
		// Acknowledged means the standby holds it, durably, now.
		if got, _ := b.st.Position(t.Context()); got.Seq < pos.Seq {
			t.Fatalf("write %d acknowledged at seq %d but the standby holds %d", i, pos.Seq, got.Seq)
		}
	}
	if da, db := digest(t, a), digest(t, b.st); da != db {
		t.Fatal("not converged")
	}
}

// deadPeer returns the URL of a loopback port nothing listens on.
func deadPeer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestSyncTimeoutWhenStandbyUnreachable(t *testing.T) {
	peer := deadPeer(t)
	cases := []struct {
		name    string
		mode    Mode
		opts    Options
		wantErr error
		wait    time.Duration // how long the first WaitReplicated blocks
	}{
		{"sync fails after timeout", Sync, Options{SyncTimeout: 2 * time.Second}, ErrNotReplicated, 2 * time.Second},
		{"sync degrades to async", Sync, Options{SyncTimeout: 2 * time.Second, DegradeToAsync: true}, nil, 2 * time.Second},
		{"async returns at once", Async, Options{SyncTimeout: 2 * time.Second}, nil, 0},
		{"async within max lag", Async, Options{SyncTimeout: 2 * time.Second, MaxLag: 10}, nil, 0},
		{"async beyond max lag", Async, Options{SyncTimeout: 3 * time.Second, MaxLag: 1}, ErrNotReplicated, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := openStore(t, sqlite.Options{})
				promote(t, a, 1)
				s := newShipper(t, a, peer, tc.mode, tc.opts)
				if err := s.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				pos := write(t, a, 1, 2)
				start := time.Now()
				err := s.WaitReplicated(t.Context(), pos.Seq)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("WaitReplicated = %v, want %v", err, tc.wantErr)
				}
				if got := time.Since(start); got != tc.wait {
					t.Fatalf("WaitReplicated took %v, want exactly %v", got, tc.wait)
				}
				synctest.Wait() // async returns before the shipper tried: let it try and fail
				st := s.Status()
				if st.Connected || st.LastError == "" || st.AckedSeq != 0 || st.LagEvents != pos.Seq {
					t.Fatalf("status = %+v", st)
				}
				if tc.opts.DegradeToAsync {
					if !st.Degraded || st.DegradedAcks != 1 {
						t.Fatalf("degraded = %v, acks %d; want true, 1", st.Degraded, st.DegradedAcks)
					}
					// While degraded, writes are acknowledged at once and counted.
					start = time.Now()
					if err := s.WaitReplicated(t.Context(), write(t, a, 1, 1).Seq); err != nil || time.Since(start) != 0 {
						t.Fatalf("degraded WaitReplicated = %v after %v", err, time.Since(start))
					}
					if st := s.Status(); st.DegradedAcks != 2 {
						t.Fatalf("degraded acks = %d, want 2", st.DegradedAcks)
					}
				}
				if err := s.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				if err := s.WaitReplicated(t.Context(), pos.Seq); tc.mode == Sync && !errors.Is(err, ErrClosed) {
					t.Fatalf("WaitReplicated after Close = %v", err)
				}
			})
		})
	}
}

func TestBackoff(t *testing.T) {
	s, err := New(openStore(t, sqlite.Options{}), "http://127.0.0.1:1", secret, Async, Options{BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := s.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := s.backoff(1000); got != time.Second {
		t.Errorf("backoff(1000) = %v", got)
	}
}

// TestRetryBackoffTiming checks that a failing peer is retried at exactly
// the backoff intervals: 50ms, then 100ms, then 200ms later.
func TestRetryBackoffTiming(t *testing.T) {
	var attempts []time.Duration
	synctest.Test(t, func(t *testing.T) {
		a := openStore(t, sqlite.Options{})
		promote(t, a, 1)
		write(t, a, 1, 1)
		start := time.Now()
		hits := make(chan struct{}, 16)
		// The fake peer is an http.Client transport inside the bubble: a
		// real server's idle connections would stop the fake clock.
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			attempts = append(attempts, time.Since(start))
			hits <- struct{}{}
			return nil, errors.New("connection refused")
		})}
		s := newShipper(t, a, "http://standby.invalid", Async, Options{Client: client, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			<-hits
		}
		s.Close(t.Context())
	})
	want := []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 350 * time.Millisecond}
	if fmt.Sprint(attempts[:4]) != fmt.Sprint(want) {
		t.Fatalf("attempts at %v, want %v", attempts, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAsyncLagReported(t *testing.T) {
	past := time.Now().Add(-30 * time.Second)
	a := openStore(t, sqlite.Options{Now: func() time.Time { return past }})
	promote(t, a, 1)
	b := newRegion(t, sqlite.Options{})
	write(t, a, 1, 3) // seqs 1..4
	s := newShipper(t, a, b.srv.URL, Async, Options{BatchEvents: 2})
	if err := s.WaitReplicated(t.Context(), 4); err != nil {
		t.Fatalf("async WaitReplicated: %v", err)
	}
	if idle, err := s.step(t.Context()); err != nil || idle {
		t.Fatalf("step = %v, %v; want a full batch", idle, err)
	}
	st := s.Status()
	if st.AckedSeq != 2 || st.LagEvents != 2 || st.LagSeconds < 30 || st.LagSeconds > 300 {
		t.Fatalf("status after one batch = %+v; want acked 2, lag 2 events, ≥ 30 s", st)
	}
	drain(t, s)
	if st := s.Status(); st.LagEvents != 0 || st.LagSeconds != 0 {
		t.Fatalf("status after drain = %+v", st)
	}
}

func TestStaleEpochRefused(t *testing.T) {
	ctx := t.Context()
	// B was promoted to epoch 2; A still thinks it is the primary of 1.
	a := openStore(t, sqlite.Options{})
	promote(t, a, 1)
	b := newRegion(t, sqlite.Options{})
	promote(t, b.st, 2)
	write(t, a, 1, 1)

	// On the wire: 409, the receiver's epoch, code stale_epoch.
	evs, _ := a.ReadEvents(ctx, 0, 10)
	body, _ := json.Marshal(Batch{Epoch: 1, Epochs: []store.EpochStart{{Epoch: 1, FirstSeq: 1}}, Events: evs})
	status, ack := post(t, b.srv.URL+PathEvents, secret, body)
	if status != http.StatusConflict || ack.Epoch != 2 || ack.Code != CodeStaleEpoch || ack.Role != store.RolePrimary {
		t.Fatalf("stale batch: %d %+v", status, ack)
	}
	if d := digest(t, b.st); d.Conversations != 0 {
		t.Fatal("stale batch applied")
	}

	// The shipper fences its own store and stops shipping.
	s := newShipper(t, a, b.srv.URL, Sync, Options{})
	if _, err := s.step(ctx); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("step = %v, want ErrSuperseded", err)
	}
	if m := meta(t, a); m.Role != store.RoleFenced || m.KnownEpoch != 2 {
		t.Fatalf("A meta = %+v, want fenced knowing epoch 2", m)
	}
	if st := s.Status(); !st.Superseded || st.PeerEpoch != 2 {
		t.Fatalf("status = %+v", st)
	}
	if err := s.WaitReplicated(ctx, 2); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("WaitReplicated = %v", err)
	}
	_, err := a.Update(ctx, 1, func(*store.Tx) error { return nil })
	if !errors.Is(err, store.ErrNotPrimary) {
		t.Fatalf("write on fenced A: %v", err)
	}
	// A store fenced because a newer epoch superseded it ships nothing.
	if idle, err := s.step(ctx); err != nil || !idle {
		t.Fatalf("step on fenced store = %v, %v", idle, err)
	}
}

func TestFormerPrimaryRejoinsAndConverges(t *testing.T) {
	ctx := t.Context()
	a := newRegion(t, sqlite.Options{}) // eastus2, primary of epoch 1
	b := newRegion(t, sqlite.Options{}) // centralus, its standby
	promote(t, a.st, 1)
	write(t, a.st, 1, 3)
	ab := newShipper(t, a.st, b.srv.URL, Async, Options{From: "eastus2"})
	drain(t, ab)
	fork := meta(t, b.st).Position.Seq + 1

	// Partition: A keeps accepting writes B never sees; B is promoted.
	write(t, a.st, 1, 2)
	lost, _ := a.st.ReadEvents(ctx, fork-1, 100)
	promote(t, b.st, 2)
	write(t, b.st, 2, 4)

	// The partition heals; B ships to A.
	ba := newShipper(t, b.st, a.srv.URL, Sync, Options{From: "centralus"})
	drain(t, ba)

	am := meta(t, a.st)
	if am.Role != store.RoleStandby || am.Epoch != 2 || am.KnownPrimary != "centralus" {
		t.Fatalf("A after rejoin = %+v, want standby of epoch 2", am)
	}
	q, err := a.st.Quarantine(ctx)
	if err != nil || len(q) != len(lost) {
		t.Fatalf("quarantine = %d events, %v; want %d", len(q), err, len(lost))
	}
	for i := range q {
		if q[i].Seq != lost[i].Seq || string(q[i].Payload) != string(lost[i].Payload) {
			t.Fatalf("quarantined %d = seq %d, want %d", i, q[i].Seq, lost[i].Seq)
		}
	}
	if da, db := digest(t, a.st), digest(t, b.st); da != db {
		t.Fatalf("not converged:\nA %+v\nB %+v", da, db)
	}
	if st := ba.Status(); st.AckedSeq != meta(t, b.st).Position.Seq || st.PeerEpoch != 2 {
		t.Fatalf("B shipper status = %+v", st)
	}
	// A's old shipper now finds nothing to ship: A is a standby.
	if idle, err := ab.step(ctx); err != nil || !idle {
		t.Fatalf("A shipper step = %v, %v", idle, err)
	}
	// New writes on B keep flowing to A in sync mode.
	pos := write(t, b.st, 2, 1)
	drain(t, ba)
	if err := ba.WaitReplicated(ctx, pos.Seq); err != nil {
		t.Fatalf("WaitReplicated: %v", err)
	}
	if da, db := digest(t, a.st), digest(t, b.st); da != db {
		t.Fatal("not converged after new writes")
	}
}

func post(t *testing.T, url, token string, body []byte) (int, Ack) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, Ack) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ack Ack
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		t.Fatalf("decode ack: %v", err)
	}
	return resp.StatusCode, ack
}

func TestAuthRequired(t *testing.T) {
	b := newRegion(t, sqlite.Options{})
	cases := []struct {
		name, header string
		want         int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong secret", "Bearer nope", http.StatusUnauthorized},
		{"prefix of secret", "Bearer " + secret[:5], http.StatusUnauthorized},
		{"basic scheme", "Basic " + secret, http.StatusUnauthorized},
		{"no scheme", secret, http.StatusUnauthorized},
		{"right", "Bearer " + secret, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				path, body := PathPosition, ""
				if method == http.MethodPost {
					path, body = PathEvents, `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[]}`
				}
				req, _ := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				status, ack := send(t, req)
				if status != tc.want {
					t.Fatalf("%s %s = %d %+v, want %d", method, path, status, ack, tc.want)
				}
				if status == http.StatusUnauthorized && ack.Code != CodeUnauthorized {
					t.Fatalf("401 code = %q", ack.Code)
				}
			}
		})
	}
	// A shipper with the wrong secret reports the refusal.
	a := openStore(t, sqlite.Options{})
	promote(t, a, 1)
	s, err := New(a, b.srv.URL, "wrong", Async, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.step(t.Context()); err == nil || !strings.Contains(s.Status().LastError, "401") {
		t.Fatalf("step with wrong secret = %v, status %+v", err, s.Status())
	}
}

func TestHandlerRefusals(t *testing.T) {
	st := openStore(t, sqlite.Options{})
	h, err := NewHandler(st, secret, HandlerOptions{MaxBodyBytes: 512}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	good := `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[]}`
	ev := func(seq int, payload string) string {
		return fmt.Sprintf(`{"epoch":1,"seq":%d,"kind":"conversation.create","at":"2026-01-01T00:00:00Z","payload":%s}`, seq, payload)
	}
	conv := `{"id":"conv_1","created_at":"2026-01-01T00:00:00Z","metadata":{}}`
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"not json", `{`, http.StatusBadRequest, CodeInvalid},
		{"unknown field", `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[],"x":1}`, http.StatusBadRequest, CodeInvalid},
		{"history does not end at epoch", `{"epoch":2,"epochs":[{"epoch":1,"first_seq":1}],"events":[]}`, http.StatusBadRequest, CodeInvalid},
		{"too large", `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"from":"` + strings.Repeat("x", 600) + `","events":[]}`, http.StatusRequestEntityTooLarge, CodeTooLarge},
		{"gap", `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[` + ev(2, conv) + `]}`, http.StatusConflict, CodeGap},
		{"bad payload", `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[` + ev(1, `{"id":"x"}`) + `]}`, http.StatusBadRequest, CodeInvalid},
		{"good", good, http.StatusOK, ""},
		{"apply", `{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[` + ev(1, conv) + `]}`, http.StatusOK, ""},
	}
	for _, tc := range cases {
		status, ack := post(t, srv.URL+PathEvents, secret, []byte(tc.body))
		if status != tc.status || ack.Code != tc.code {
			t.Fatalf("%s: %d %+v, want %d %q", tc.name, status, ack, tc.status, tc.code)
		}
	}
	if p, _ := st.Position(t.Context()); p.Seq != 1 {
		t.Fatalf("position = %+v", p)
	}
	// A primary of the sender's own epoch refuses: two primaries of one
	// epoch must never merge.
	other := openStore(t, sqlite.Options{})
	promote(t, other, 1)
	h2, _ := NewHandler(other, secret, HandlerOptions{}, nil)
	srv2 := httptest.NewServer(h2)
	t.Cleanup(srv2.Close)
	if status, ack := post(t, srv2.URL+PathEvents, secret, []byte(good)); status != http.StatusConflict || ack.Code != CodeConflict {
		t.Fatalf("same-epoch primary: %d %+v", status, ack)
	}
	if m := meta(t, other); m.Role != store.RolePrimary {
		t.Fatalf("same-epoch batch changed the role to %s", m.Role)
	}
	if _, err := NewHandler(st, "", HandlerOptions{}, nil); err == nil {
		t.Fatal("NewHandler with empty secret succeeded")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"epoch":1,"epochs":[{"epoch":1,"first_seq":1}],"events":[]}`))
	f.Add([]byte(`{"epoch":2,"epochs":[{"epoch":1,"first_seq":1},{"epoch":2,"first_seq":5}],"from":"b","events":[{"epoch":1,"seq":4,"kind":"conversation.delete","at":"2026-01-01T00:00:00Z","payload":{"id":"conv_1"}},{"epoch":2,"seq":5,"kind":"item.delete","at":"2026-01-01T00:00:00Z","payload":{"conversation_id":"conv_1","id":"msg_1"}}]}`))
	f.Add([]byte(`{"epoch":1,"epochs":[],"events":null}`))
	f.Add([]byte(`{"epoch":1} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What decodes satisfies the batch invariants and round-trips.
		if b.Epoch < 1 || b.Epochs[len(b.Epochs)-1].Epoch != b.Epoch {
			t.Fatalf("accepted bad header: %+v", b)
		}
		for i, ev := range b.Events {
			if ev.Epoch < 1 || ev.Epoch > b.Epoch || (i > 0 && ev.Seq != b.Events[i-1].Seq+1) {
				t.Fatalf("accepted bad event %d: %+v", i, ev)
			}
		}
		enc, err := encodeBatch(b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := DecodeBatch(bytes.NewReader(enc)); err != nil {
			t.Fatalf("re-decode %s: %v", enc, err)
		}
	})
}

// BenchmarkReplicateLoopback measures events/s shipped over loopback HTTP
// from one sqlite store to another, in batches of 500.
func BenchmarkReplicateLoopback(b *testing.B) {
	const total = 5000
	a := openStore(b, sqlite.Options{})
	promote(b, a, 1)
	for range total / 100 {
		write(b, a, 1, 99) // 1 conversation + 99 items = 100 events
	}
	var shipped int
	for b.Loop() {
		b.StopTimer()
		r := newRegion(b, sqlite.Options{})
		s := newShipper(b, a, r.srv.URL, Async, Options{BatchEvents: 500})
		b.StartTimer()
		drain(b, s)
		b.StopTimer()
		if st := s.Status(); st.AckedSeq != total {
			b.Fatalf("acked %d of %d", st.AckedSeq, total)
		}
		shipped += total
		r.srv.Close()
		r.st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(shipped)/b.Elapsed().Seconds(), "events/s")
}
