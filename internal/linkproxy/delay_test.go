package linkproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// The tests in this file run inside a synctest bubble on in-memory net.Pipe
// connections, so time is virtual and every delay is asserted exactly.

// pipeLink is a proxy wired to in-memory connections.
type pipeLink struct {
	p     *Proxy
	dials chan net.Conn // the upstream side of each dialed connection
}

func newPipeLink(t *testing.T, cfg Config) *pipeLink {
	t.Helper()
	cfg.Upstream = "upstream.test:1"
	pl := &pipeLink{p: New(cfg, nil), dials: make(chan net.Conn, 8)}
	pl.p.dial = func(ctx context.Context) (net.Conn, error) {
		ours, theirs := net.Pipe()
		pl.dials <- theirs
		return ours, nil
	}
	t.Cleanup(func() {
		if err := pl.p.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return pl
}

// connect hands the proxy a new client connection and returns the client's end.
func (pl *pipeLink) connect() net.Conn {
	client, proxySide := net.Pipe()
	pl.p.serve(proxySide)
	return client
}

// upstream returns the upstream end of the latest connection.
func (pl *pipeLink) upstream(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-pl.dials:
		return c
	default:
		t.Fatal("the proxy has not dialed the upstream")
		return nil
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func read(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

func TestLatencyIsAddedInEachDirection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{Latency: 20 * time.Millisecond})
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)
		start := time.Now()

		write(t, client, "ping")
		if got := read(t, up, 4); got != "ping" {
			t.Fatalf("upstream got %q", got)
		}
		if got := time.Since(start); got != 20*time.Millisecond {
			t.Errorf("client → upstream took %v, want 20ms", got)
		}
		write(t, up, "pong")
		if got := read(t, client, 4); got != "pong" {
			t.Fatalf("client got %q", got)
		}
		if got := time.Since(start); got != 40*time.Millisecond {
			t.Errorf("round trip took %v, want 40ms", got)
		}
	})
}

// Chunks are delayed concurrently: three chunks sent 5ms apart through a
// 20ms link arrive 5ms apart, 20ms late, not 20ms after one another.
func TestLatencyPipelinesChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{Latency: 20 * time.Millisecond})
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)
		start := time.Now()

		arrivals := make(chan time.Duration, 3)
		go func() {
			buf := make([]byte, 64)
			for range 3 {
				if _, err := up.Read(buf); err != nil {
					return
				}
				arrivals <- time.Since(start)
			}
		}()
		for i := range 3 {
			write(t, client, "x")
			if i < 2 {
				time.Sleep(5 * time.Millisecond) // virtual: spaces the sends
			}
		}
		for i, want := range []time.Duration{20 * time.Millisecond, 25 * time.Millisecond, 30 * time.Millisecond} {
			if got := <-arrivals; got != want {
				t.Errorf("chunk %d arrived at %v, want %v", i, got, want)
			}
		}
	})
}

func TestJitterBoundsAndOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond})
		// First chunk: the highest draw (+10ms); second: the lowest (-10ms).
		draws := []int64{20_000_000, 0}
		pl.p.randN = func(n int64) int64 {
			if n != 20_000_001 {
				t.Errorf("randN(%d), want randN(2*jitter+1)", n)
			}
			if len(draws) == 0 {
				t.Error("more draws than chunks")
				return n / 2
			}
			d := draws[0]
			draws = draws[1:]
			return d
		}
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)
		start := time.Now()

		write(t, client, "a")
		time.Sleep(time.Millisecond) // virtual
		write(t, client, "b")
		// "a" is due at 30ms; "b" would be due at 11ms but must not overtake.
		if got := read(t, up, 1); got != "a" {
			t.Fatalf("first chunk %q, want a", got)
		}
		if got := time.Since(start); got != 30*time.Millisecond {
			t.Errorf("a arrived at %v, want 30ms", got)
		}
		if got := read(t, up, 1); got != "b" {
			t.Fatalf("second chunk %q, want b", got)
		}
		if got := time.Since(start); got != 30*time.Millisecond {
			t.Errorf("b arrived at %v, want 30ms (held behind a)", got)
		}
	})
}

func TestSetLatencyAppliesToNewChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{})
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)

		for _, lat := range []time.Duration{0, 50 * time.Millisecond, 3 * time.Millisecond, 0} {
			if err := pl.p.SetLatency(lat, 0); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			write(t, client, "z")
			read(t, up, 1)
			if got := time.Since(start); got != lat {
				t.Errorf("latency %v: delivered after %v", lat, got)
			}
		}
		if err := pl.p.SetLatency(-time.Millisecond, 0); err == nil {
			t.Error("SetLatency accepted a negative latency")
		}
		if got := pl.p.Status().Latency; got != 0 {
			t.Errorf("status latency = %v after a rejected change, want 0", got)
		}
	})
}

func TestBlackholeHoldsUntilRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{Latency: 10 * time.Millisecond})
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)
		got := make(chan string, 4)
		go func() {
			buf := make([]byte, 64)
			for {
				n, err := up.Read(buf)
				if err != nil {
					return
				}
				got <- string(buf[:n])
			}
		}()

		pl.p.Blackhole()
		start := time.Now()
		write(t, client, "held")
		late := pl.connect()  // a connection made during the blackhole
		time.Sleep(time.Hour) // virtual: a long outage
		synctest.Wait()
		select {
		case s := <-got:
			t.Fatalf("blackholed link delivered %q", s)
		default:
		}
		select {
		case <-pl.dials:
			t.Fatal("blackholed link dialed the upstream for a new connection")
		default:
		}
		if s := pl.p.Status(); s.State != StateBlackhole || s.Active != 2 {
			t.Errorf("status during blackhole: state %s, active %d; want blackhole, 2", s.State, s.Active)
		}

		pl.p.Restore()
		if s := <-got; s != "held" {
			t.Errorf("after restore got %q, want held", s)
		}
		if d := time.Since(start); d != time.Hour {
			t.Errorf("held data delivered at %v, want at restore (1h)", d)
		}
		synctest.Wait()
		lateUp := pl.upstream(t)
		write(t, late, "new")
		if s := read(t, lateUp, 3); s != "new" {
			t.Errorf("late connection delivered %q", s)
		}
	})
}

func TestCutClosesAndRefusesUntilRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{})
		client := pl.connect()
		synctest.Wait()
		up := pl.upstream(t)
		write(t, client, "hi")
		read(t, up, 2)

		pl.p.Cut()
		if _, err := client.Read(make([]byte, 1)); err == nil {
			t.Fatal("client read succeeded on a cut link")
		}
		if _, err := up.Read(make([]byte, 1)); err == nil {
			t.Fatal("upstream read succeeded on a cut link")
		}

		refused := pl.connect()
		if _, err := refused.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("new connection during cut: read err %v, want EOF", err)
		}
		synctest.Wait()
		if s := pl.p.Status(); s.State != StateCut || s.Refused != 1 || s.Active != 0 || s.Accepted != 1 {
			t.Errorf("status after cut = %+v", s)
		}

		pl.p.Restore()
		again := pl.connect()
		synctest.Wait()
		up2 := pl.upstream(t)
		write(t, again, "back")
		if s := read(t, up2, 4); s != "back" {
			t.Errorf("after restore got %q", s)
		}
	})
}

func TestCloseEndsEveryConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pl := newPipeLink(t, Config{Latency: time.Second})
		client := pl.connect()
		synctest.Wait()
		pl.upstream(t)
		write(t, client, "in flight")
		if err := pl.p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Read(make([]byte, 1)); err == nil {
			t.Fatal("client read succeeded after Close")
		}
		if s := pl.p.Status(); s.Active != 0 {
			t.Errorf("active = %d after Close", s.Active)
		}
	})
}
