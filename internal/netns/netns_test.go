package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		pid          int
		ok           bool
	}{
		{"us-4242-eastus2", "us-", 4242, true},
		{"us-4242-probe", "us-", 4242, true},
		{"us-e2e-4242-1-A", "us-", 0, false}, // another prefix's
		{"us-e2e-4242-1-A", "us-e2e-", 4242, true},
		{"us-4242", "us-", 0, false},
		{"us--1-x", "us-", 0, false},
		{"other-4242-x", "us-", 0, false},
	} {
		pid, ok := Owner(tc.name, tc.prefix)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("Owner(%q, %q) = %d, %v; want %d, %v", tc.name, tc.prefix, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestFreeSubnets(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		used []netip.Prefix
		n    int
		want []string
		err  bool
	}{
		{"empty host", nil, 2, []string{"10.78.0.0/30", "10.78.1.0/30"}, false},
		{"taken by another up", []netip.Prefix{p("10.78.0.0/30"), p("10.78.2.0/30")}, 2, []string{"10.78.1.0/30", "10.78.3.0/30"}, false},
		{"a wider route", []netip.Prefix{p("10.78.0.0/23")}, 1, []string{"10.78.2.0/30"}, false},
		{"the default route is not a collision", []netip.Prefix{p("0.0.0.0/0")}, 1, []string{"10.78.0.0/30"}, false},
		{"all of 10.0.0.0/8 routed", []netip.Prefix{p("10.0.0.0/8")}, 1, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FreeSubnets(tc.n, tc.used)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			var s []string
			for _, g := range got {
				s = append(s, g.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

// requireNetns skips unless namespaces can be made; under CI=true (root)
// it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	if err := Available(t.Context(), fmt.Sprintf("us-nstest-%d-probe", os.Getpid())); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are required under CI: %v", err)
		}
		t.Skipf("network namespaces unavailable: %v", err)
	}
}

func TestLinkAndSweep(t *testing.T) {
	requireNetns(t)
	ctx := t.Context()
	used, err := HostPrefixes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(used, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr("127.0.0.1")) }) {
		t.Errorf("host prefixes %v lack loopback", used)
	}

	// Two namespaces joined by a veth pair (the e2e labs' shape).
	a, b := fmt.Sprintf("us-nstest-%d-a", os.Getpid()), fmt.Sprintf("us-nstest-%d-b", os.Getpid())
	for _, n := range []string{a, b} {
		if err := Add(ctx, n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Delete(context.Background(), n) })
	}
	l := Link{ANS: a, ADev: "va", BNS: b, BDev: "vb",
		A: netip.MustParsePrefix("10.77.200.1/30"), B: netip.MustParsePrefix("10.77.200.2/30")}
	if err := l.Add(ctx); err != nil {
		t.Fatal(err)
	}
	// A ping from a to b is a process run with Command in a.
	ping := func() error {
		return Command(a, os.Args[0], "-test.run=^TestHelperDial$").Run()
	}
	t.Setenv("NETNS_TEST_DIAL", "10.77.200.2")
	// Nothing listens on b: a refused connection proves the path, a
	// timeout or an unreachable network its absence.
	if err := ping(); err != nil {
		t.Fatalf("dial across the pair: %v", err)
	}
	if err := l.Set(ctx, false, true, false); err != nil {
		t.Fatal(err)
	}
	neigh := func() string {
		out, err := exec.CommandContext(ctx, "ip", "-n", a, "neigh", "show", "10.77.200.2", "dev", "va").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	// The kernel forgets a's entry for b once it sees the carrier gone
	// (arp_evict_nocarrier; link events are batched, up to a second).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); neigh() != ""; <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("a's neighbour entry for b outlived b's carrier: %q", neigh())
		}
	}
	if err := ping(); err == nil {
		t.Error("a dial crossed a pair whose far end is down")
	}
	// The failed dial left the entry being resolved, probes a second apart.
	// The heal announces b, so a reaches b at once instead of at a's next
	// probe (up to 1 s, beyond the dial's 300 ms).
	if n := neigh(); !strings.Contains(n, "INCOMPLETE") {
		t.Fatalf("a's neighbour entry for b while b is down: %q, want INCOMPLETE", n)
	}
	if err := l.Set(ctx, false, true, true); err != nil {
		t.Fatal(err)
	}
	mac, err := exec.CommandContext(ctx, "ip", "-n", b, "-br", "link", "show", "dev", "vb").Output()
	if err != nil {
		t.Fatal(err)
	}
	if f, n := strings.Fields(string(mac)), neigh(); len(f) < 3 || !strings.Contains(n, "lladdr "+f[2]+" REACHABLE") {
		t.Errorf("after the heal, a's neighbour entry for b is %q, want b's MAC (%q), REACHABLE", n, mac)
	}
	if err := ping(); err != nil {
		t.Errorf("first dial after the heal: %v", err)
	}

	// Sweep deletes a dead process's namespaces and keeps a live one's.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no true command: %v", err)
	}
	stale := fmt.Sprintf("us-nstest-%d-x", dead.Process.Pid)
	if err := Add(ctx, stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(context.Background(), stale) })
	gone, err := Sweep(ctx, "us-nstest-")
	if err != nil {
		t.Fatal(err)
	}
	names, _ := List(ctx)
	if !slices.Equal(gone, []string{stale}) || slices.Contains(names, stale) || !slices.Contains(names, a) || !slices.Contains(names, b) {
		t.Errorf("swept %v, left %v", gone, names)
	}
}

// TestHelperDial is the process TestLinkAndSweep runs inside a namespace:
// it exits 0 when port 1 of NETNS_TEST_DIAL answers at all (refused
// included), 1 when nothing comes back.
func TestHelperDial(t *testing.T) {
	addr := os.Getenv("NETNS_TEST_DIAL")
	if addr == "" {
		t.Skip("run by TestLinkAndSweep")
	}
	d := &net.Dialer{Timeout: 300 * time.Millisecond}
	_, err := d.Dial("tcp", net.JoinHostPort(addr, "1"))
	if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		return
	}
	t.Fatal(err)
}
