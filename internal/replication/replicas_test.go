package replication

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/linkproxy"
	"github.com/understudy/understudy/internal/store"
	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/testutil/pgtest"
)

// One PostgreSQL server per test binary (started on first use); each test
// gets its own databases.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn, postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Two gateway replicas per region, each region on its own database: both
// primary replicas run their own shipper, and both push the same journal
// through the standby region's balancer into the two standby replicas,
// which apply into one database. Since ApplyEvents skips what the store
// already holds, the duplicates must be harmless: every write a replica
// acknowledged in sync mode is on the standby database, nothing is
// refused, and the databases converge.
func TestTwoShippersIntoOneStandbyDatabase(t *testing.T) {
	pg := pgtest.Shared(t)
	dsnA, dsnB := pg.NewDatabase(t), pg.NewDatabase(t)
	primaries := []*postgres.Store{openPG(t, dsnA), openPG(t, dsnA)}
	if err := primaries[0].Promote(t.Context(), 1); err != nil {
		t.Fatal(err)
	}

	// The standby region: two replicas, each its own store handle and
	// handler (as two processes would have), behind a round-robin balancer.
	var refused sync.Map // ack code → count of non-200 answers
	var upstreams []string
	var standbys []*postgres.Store
	for range 2 {
		st := openPG(t, dsnB)
		standbys = append(standbys, st)
		h, err := NewHandler(st, secret, HandlerOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			h.ServeHTTP(rec, r)
			if rec.code != http.StatusOK {
				n, _ := refused.LoadOrStore(rec.code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}))
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		upstreams = append(upstreams, u.Host)
	}
	lb := linkproxy.New(linkproxy.Config{Name: "standby-lb", Upstreams: upstreams}, nil)
	if err := lb.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lb.Close(ctx)
	})
	regionURL := "http://" + lb.Addr().String()

	// One shipper per primary replica, new connections per request so the
	// balancer spreads batches over both standby replicas.
	var shippers []*Shipper
	for i, st := range primaries {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		s := newShipper(t, st, regionURL, Sync, Options{From: "eastus2", SyncTimeout: 30 * time.Second,
			BatchEvents: 3, Client: client})
		if err := s.Start(t.Context()); err != nil {
			t.Fatalf("shipper %d: %v", i, err)
		}
		shippers = append(shippers, s)
	}

	// Writers on both primary replicas; each write acknowledged only once
	// its replica's shipper saw the standby apply it.
	const writers, perWriter = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		st, sh := primaries[w%2], shippers[w%2]
		wg.Go(func() {
			for i := range perWriter {
				pos, err := st.Update(t.Context(), 1, func(tx *store.Tx) error {
					c, err := tx.CreateConversation(store.Conversation{Metadata: map[string]string{"w": fmt.Sprint(w), "i": fmt.Sprint(i)}})
					if err != nil {
						return err
					}
					_, err = tx.AppendItems(c.ID, []store.Item{{Type: store.ItemMessage, Role: "user",
						Data: []byte(fmt.Sprintf(`{"type":"message","role":"user","content":[{"type":"input_text","text":"w%d i%d"}]}`, w, i))}})
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d write %d: %w", w, i, err)
					return
				}
				if err := sh.WaitReplicated(t.Context(), pos.Seq); err != nil {
					errs <- fmt.Errorf("writer %d write %d (seq %d): WaitReplicated: %w", w, i, pos.Seq, err)
					return
				}
				// Acknowledged: the standby database holds it now.
				if got, err := standbys[i%2].Position(t.Context()); err != nil || got.Seq < pos.Seq {
					errs <- fmt.Errorf("seq %d acknowledged, standby holds %d (%v)", pos.Seq, got.Seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	da, err := primaries[1].Digest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := standbys[0].Digest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if da != db || da.Conversations != writers*perWriter {
		t.Fatalf("not converged:\nprimary %+v\nstandby %+v", da, db)
	}
	refused.Range(func(code, n any) bool {
		t.Errorf("standby replicas answered %d to %d batches; duplicates must be skipped, not refused", code, n.(*atomic.Int64).Load())
		return true
	})
	pa, err := primaries[0].Position(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if pb, err := standbys[1].Position(t.Context()); err != nil || pb != pa {
		t.Fatalf("standby position %+v (%v), primary %+v", pb, err, pa)
	}
	// Both shippers carried batches, and between them shipped events more
	// than once: the duplicates happened and were skipped.
	var shipped int64
	for i, s := range shippers {
		st := s.Status()
		if st.Batches == 0 {
			t.Errorf("shipper %d sent no batch: %+v", i, st)
		}
		shipped += st.Events
	}
	if shipped <= pa.Seq {
		t.Errorf("shippers sent %d events for a journal of %d: no duplicate was exercised", shipped, pa.Seq)
	}
	t.Logf("journal %d events, shipped %d by two shippers", pa.Seq, shipped)
	if st := lb.Status(); st.Accepted < 4 {
		t.Errorf("balancer accepted %d connections", st.Accepted)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}
