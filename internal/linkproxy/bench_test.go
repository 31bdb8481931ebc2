package linkproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// startSink starts a TCP server that reads and discards everything and
// reports how many bytes each connection carried once it ends.
func startSink(tb testing.TB) (addr string, totals <-chan int64) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	out := make(chan int64, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				out <- n
			})
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), out
}

// BenchmarkThroughput streams 32 KiB writes through a zero-latency link into
// a sink; the bytes are counted when the sink has received all of them.
func BenchmarkThroughput(b *testing.B) {
	sink, totals := startSink(b)
	p := startProxy(b, Config{Upstream: sink})
	c := dial(b, p)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	var sent int64
	for b.Loop() {
		n, err := c.Write(buf)
		if err != nil {
			b.Fatal(err)
		}
		sent += int64(n)
	}
	c.CloseWrite()
	if got := <-totals; got != sent {
		b.Fatalf("sink received %d bytes, sent %d", got, sent)
	}
}

// BenchmarkRoundTrip is a 64-byte request/response against an echo server,
// directly and through a zero-latency link: the difference is the latency
// the proxy adds per message and direction pair.
func BenchmarkRoundTrip(b *testing.B) {
	echo := startEcho(b)
	p := startProxy(b, Config{Upstream: echo})
	for _, tc := range []struct {
		name string
		addr string
	}{{"direct", echo}, {"proxy", p.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
