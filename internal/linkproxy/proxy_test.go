package linkproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// The tests in this file use real loopback sockets. Real I/O does not run on
// synctest's virtual clock, so timing here is asserted only as lower bounds;
// exact delays are asserted in delay_test.go.

// startEcho starts a TCP server that echoes every connection until EOF and
// then closes it. It returns the server's address.
func startEcho(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func startProxy(tb testing.TB, cfg Config) *Proxy {
	tb.Helper()
	p := New(cfg, nil)
	if err := p.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return p
}

func dial(tb testing.TB, p *Proxy) *net.TCPConn {
	tb.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip sends msg and reads it back from the echo server.
func roundTrip(tb testing.TB, c net.Conn, msg string) {
	tb.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		tb.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		tb.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		tb.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// echoAll writes payload, half-closes, and returns everything read back.
func echoAll(c *net.TCPConn, payload []byte) ([]byte, error) {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		return nil, fmt.Errorf("write: %w", werr)
	}
	return got, err
}

func TestStartValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Upstream: "no-port"},
		{Upstream: "127.0.0.1:1", Latency: -1},
		{Upstream: "127.0.0.1:1", Jitter: -1},
	} {
		if err := New(cfg, nil).Start(context.Background()); err == nil {
			t.Errorf("Start(%+v) accepted an invalid config", cfg)
		}
	}
}

func TestBytesPassBothWaysUnchanged(t *testing.T) {
	p := startProxy(t, Config{Name: "db", Upstream: startEcho(t)})
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	got, err := echoAll(dial(t, p), payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, not equal to the %d sent", len(got), len(payload))
	}
	s := p.Status()
	if s.BytesUp != int64(len(payload)) || s.BytesDown != int64(len(payload)) {
		t.Errorf("bytes up %d down %d, want %d each", s.BytesUp, s.BytesDown, len(payload))
	}
	if s.Name != "db" || s.State != StateUp || s.Accepted != 1 || s.Listen != p.Addr().String() {
		t.Errorf("status = %+v", s)
	}
}

func TestLatencyOnRealSockets(t *testing.T) {
	const lat = 25 * time.Millisecond
	p := startProxy(t, Config{Upstream: startEcho(t), Latency: lat})
	c := dial(t, p)
	start := time.Now()
	roundTrip(t, c, "ping")
	if got := time.Since(start); got < 2*lat {
		t.Errorf("round trip took %v, want at least 2×%v", got, lat)
	}
	// Many chunks in flight through the delay arrive intact and in order.
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	c2 := dial(t, p)
	got, err := echoAll(c2, payload)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("bulk echo: %d bytes, err %v", len(got), err)
	}
}

func TestCutResetsAndRefusesUntilRestore(t *testing.T) {
	p := startProxy(t, Config{Upstream: startEcho(t)})
	live := dial(t, p)
	roundTrip(t, live, "before")

	p.Cut()
	live.SetReadDeadline(time.Now().Add(10 * time.Second)) // a safety net, not a wait
	if _, err := live.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("live connection after cut: read err %v, want closed", err)
	}

	// The kernel completes the handshake and the proxy resets the
	// connection at once: the dial or the first read fails.
	if refused, err := net.Dial("tcp", p.Addr().String()); err == nil {
		defer refused.Close()
		refused.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := refused.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("new connection during cut: read err %v, want closed", err)
		}
	}
	if s := p.Status(); s.State != StateCut || s.Refused != 1 {
		t.Errorf("status after cut: state %s refused %d", s.State, s.Refused)
	}

	p.Restore()
	roundTrip(t, dial(t, p), "after")
}

func TestBlackholeStallsThenDelivers(t *testing.T) {
	p := startProxy(t, Config{Upstream: startEcho(t)})
	c := dial(t, p)
	roundTrip(t, c, "before")

	p.Blackhole()
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	// The only way to see "nothing arrives" on a real socket is to wait a
	// bounded time for it; the exact behaviour is tested in delay_test.go.
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackholed read returned %d bytes, err %v; want a stall", n, err)
	}
	if s := p.Status(); s.State != StateBlackhole || s.Active != 1 {
		t.Errorf("status during blackhole: state %s active %d", s.State, s.Active)
	}

	p.Restore()
	c.SetReadDeadline(time.Time{})
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after restore read %q, %v; want during", buf, err)
	}
}

func TestConcurrentConnections(t *testing.T) {
	const n = 24
	p := startProxy(t, Config{Upstream: startEcho(t), Latency: time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			payload := bytes.Repeat([]byte{byte(i)}, 64<<10+i)
			got, err := echoAll(dial(t, p), payload)
			switch {
			case err != nil:
				errs <- fmt.Errorf("conn %d: %w", i, err)
			case !bytes.Equal(got, payload):
				errs <- fmt.Errorf("conn %d: echoed %d bytes that differ from the %d sent", i, len(got), len(payload))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want int64
	for i := range n {
		want += 64<<10 + int64(i)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := p.Status()
	if s.Accepted != n || s.Active != 0 || s.BytesUp != want || s.BytesDown != want {
		t.Errorf("status = accepted %d active %d up %d down %d; want %d, 0, %d, %d",
			s.Accepted, s.Active, s.BytesUp, s.BytesDown, n, want, want)
	}
}

func TestUpstreamDownClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startProxy(t, Config{Upstream: dead})
	c := dial(t, p)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read err %v, want the connection closed", err)
	}
}
