package linkproxy

import (
	"io"
	"net"
	"slices"
	"testing"
)

// nameServer accepts connections and writes its name on each, then closes.
func nameServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// refusingAddr is a loopback address nothing listens on.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestBalanceRoundRobinSkipsRefusing(t *testing.T) {
	a, b := nameServer(t, "a"), nameServer(t, "b")
	dead := refusingAddr(t)
	p := startProxy(t, Config{Upstreams: []string{a, dead, b}})
	who := func() string {
		c := dial(t, p)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	var got []string
	for range 6 {
		got = append(got, who())
	}
	// Turns: a, dead (→ b), b, a, dead (→ b), b.
	if want := []string{"a", "b", "b", "a", "b", "b"}; !slices.Equal(got, want) {
		t.Fatalf("connections went to %v, want %v", got, want)
	}
	if err := p.SetUpstreams([]string{dead, a}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if w := who(); w != "a" {
			t.Fatalf("after SetUpstreams a connection went to %q, want a", w)
		}
	}
	if err := p.SetUpstreams([]string{"nonsense"}); err == nil {
		t.Fatal("SetUpstreams accepted an address that is not host:port")
	}
	if s := p.Status().Upstream; s != dead+","+a {
		t.Fatalf("status upstream = %q", s)
	}
}

func TestBalanceAllRefusingClosesClient(t *testing.T) {
	p := startProxy(t, Config{Upstreams: []string{refusingAddr(t), refusingAddr(t)}})
	c := dial(t, p)
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q from a link with no live upstream", got)
	}
}
