package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// rawPair returns the two ends of a loopback TCP connection, each read and
// written through rawConn.
func rawPair(t *testing.T) (a, b *rawConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	ca, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb := <-accepted
	if cb == nil {
		t.Fatal("accept failed")
	}
	a, okA := fast(ca).(*rawConn)
	b, okB := fast(cb).(*rawConn)
	if !okA || !okB {
		t.Fatalf("fast returned %T and %T, want *rawConn", fast(ca), fast(cb))
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestRawConnCarriesBytes(t *testing.T) {
	a, b := rawPair(t)
	// More than the socket buffers hold, so writes wait for the reader.
	want := make([]byte, 16<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	wrote := make(chan error, 1)
	go func() {
		n, err := a.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		if err == nil {
			err = a.CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's CloseWrite = %d, %v; want 0, EOF", n, err)
	}
	if n, err := b.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read = %d, %v", n, err)
	}
}

func TestRawConnDeadlinesAndClose(t *testing.T) {
	a, b := rawPair(t)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := b.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}

	// Nobody reads b: the write fills the socket buffers, then times out
	// having written part of it.
	big := make([]byte, 64<<20) // made before the deadline is set: zeroing it takes time
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := a.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 64<<20 {
		t.Fatalf("write past its deadline = %d, %v; want part written and a timeout", n, err)
	}

	for {
		// Drain what a wrote, then wait in Read until Close.
		b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := b.Read(make([]byte, 1<<20)); err != nil {
			break
		}
	}
	b.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		done <- err
	}()
	time.AfterFunc(10*time.Millisecond, func() { b.Close() })
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read ended by Close: %v, want net.ErrClosed", err)
	}
}

func TestRawConnPeerReset(t *testing.T) {
	a, b := rawPair(t)
	b.SetLinger(0)
	b.Close() // sends a reset
	a.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := a.Read(make([]byte, 1)) // waits for the reset
	var op *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("read from a reset connection: %v, want a read *net.OpError with ECONNRESET", err)
	}
	_, err = a.Write([]byte("x"))
	if !errors.Is(err, syscall.EPIPE) || !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("write to a reset connection: %v, want a write *net.OpError with EPIPE", err)
	}
}

// TestRawConnOrdersForRaceDetector fails under -race (as CI runs it) if
// rawConn stops recording that a write happens before the read of it.
func TestRawConnOrdersForRaceDetector(t *testing.T) {
	a, b := rawPair(t)
	var shared int
	go func() {
		shared = 1
		a.Write([]byte("x"))
	}()
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if shared != 1 {
		t.Fatal("the write was read before it was made")
	}
}

// TestServerAndTransportUseRawConns: both sides of a proxy's request path
// read and write through rawConn.
func TestServerAndTransportUseRawConns(t *testing.T) {
	s := &Server{Log: discardLog()}
	var notRaw []string
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		for c := range s.conns {
			if _, ok := c.nc.(*rawConn); !ok {
				notRaw = append(notRaw, "server conn "+fmt.Sprintf("%T", c.nc))
			}
		}
		s.mu.Unlock()
		io.WriteString(w, "ok")
	})
	addr, _, _ := start(t, s)
	tr := newTestTransport()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	if _, body, err := roundTrip(t, tr, req); err != nil || body != "ok" {
		t.Fatalf("round trip: %q, %v", body, err)
	}
	tr.mu.Lock()
	for _, cs := range tr.idle {
		for _, c := range cs {
			if _, ok := c.conn.Conn.(*rawConn); !ok {
				notRaw = append(notRaw, "transport conn "+fmt.Sprintf("%T", c.conn.Conn))
			}
		}
	}
	n := len(tr.idle)
	tr.mu.Unlock()
	if n != 1 || len(notRaw) > 0 {
		t.Fatalf("idle hosts %d (want 1); not raw: %v", n, notRaw)
	}
}
