package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/understudy/understudy/internal/netns"
)

// A private network of Linux network namespaces for partition tests: one
// namespace per failure domain, a veth pair per link, no route anywhere
// else. Nothing touches the root namespace: the test process reaches a
// namespace by creating its sockets inside it (setns on a locked thread),
// so a partition cuts the components off from each other and never from
// the test.
//
// Addresses: node i holds 10.77.0.i/32 on its loopback (components listen
// there); link k is 10.77.k.0/30 (.1 on the first node, .2 on the second)
// with a /32 route to the peer's node address through it. New namespaces
// have no default route and do not forward, so when a link is down there
// is no other path.

// netnsPrefix starts every namespace these tests create; the test pid
// follows, so a run can remove what a killed earlier run left behind.
const netnsPrefix = "us-e2e-"

var labSeq atomic.Int64

// nsNode is one namespace.
type nsNode struct {
	name string // the test's name for it (A, B, W)
	ns   string // the namespace's name
	ip   string // its node address
}

// nsLink is one veth pair between two namespaces.
type nsLink struct {
	a, b *nsNode
	veth netns.Link
}

// netLab is the namespaces and links of one test.
type netLab struct {
	t     *testing.T
	nodes map[string]*nsNode
	links []*nsLink
}

// requireNetns skips the test when network namespaces are not available
// (not root, no iproute2, no permission): under CI=true it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs processes in network namespaces")
	}
	if err := netns.Available(t.Context(), fmt.Sprintf("%s%d-probe", netnsPrefix, os.Getpid())); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are required under CI: %v", err)
		}
		t.Skipf("network namespaces unavailable: %v", err)
	}
}

// ipCmd runs ip with args and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if err := netns.IP(t.Context(), args...); err != nil {
		t.Fatal(err)
	}
}

// newNetLab creates one namespace per name, with its loopback up and its
// node address. Every namespace (and so every veth in it) is deleted when
// the test ends, pass or fail; components started in them with startIn
// are killed first (cleanups run last-registered first).
func newNetLab(t *testing.T, names ...string) *netLab {
	t.Helper()
	requireNetns(t)
	// Namespaces a killed earlier run of these tests left behind.
	if _, err := netns.Sweep(t.Context(), netnsPrefix); err != nil {
		t.Logf("sweep: %v", err)
	}
	lab := &netLab{t: t, nodes: map[string]*nsNode{}}
	id := labSeq.Add(1)
	for i, name := range names {
		n := &nsNode{name: name, ns: fmt.Sprintf("%s%d-%d-%s", netnsPrefix, os.Getpid(), id, name), ip: fmt.Sprintf("10.77.0.%d", i+1)}
		if err := netns.Add(t.Context(), n.ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(context.Background(), n.ns); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
		ipCmd(t, "-n", n.ns, "addr", "add", n.ip+"/32", "dev", "lo")
		lab.nodes[name] = n
	}
	return lab
}

func (lab *netLab) node(name string) *nsNode {
	n := lab.nodes[name]
	if n == nil {
		lab.t.Fatalf("no namespace %s", name)
	}
	return n
}

// link connects two namespaces with a veth pair and routes each one's node
// address through it.
func (lab *netLab) link(a, b string) {
	t := lab.t
	t.Helper()
	k := len(lab.links) + 1
	l := &nsLink{a: lab.node(a), b: lab.node(b)}
	l.veth = netns.Link{ANS: l.a.ns, ADev: fmt.Sprintf("v%d-%s%s", k, a, b), BNS: l.b.ns, BDev: fmt.Sprintf("v%d-%s%s", k, b, a),
		A: netip.MustParsePrefix(fmt.Sprintf("10.77.%d.1/30", k)), B: netip.MustParsePrefix(fmt.Sprintf("10.77.%d.2/30", k))}
	if err := l.veth.Add(t.Context()); err != nil {
		t.Fatal(err)
	}
	lab.links = append(lab.links, l)
	lab.up(l)
}

// up brings both ends of l up and (re)installs the node routes, which a
// link going down takes with it.
func (lab *netLab) up(l *nsLink) {
	t := lab.t
	t.Helper()
	if err := l.veth.Set(t.Context(), true, true, true); err != nil {
		t.Fatal(err)
	}
	ipCmd(t, "-n", l.a.ns, "route", "replace", l.b.ip+"/32", "via", l.veth.B.Addr().String(), "dev", l.veth.ADev)
	ipCmd(t, "-n", l.b.ns, "route", "replace", l.a.ip+"/32", "via", l.veth.A.Addr().String(), "dev", l.veth.BDev)
}

func (lab *netLab) find(a, b string) *nsLink {
	for _, l := range lab.links {
		if (l.a.name == a && l.b.name == b) || (l.a.name == b && l.b.name == a) {
			return l
		}
	}
	lab.t.Fatalf("no link %s-%s", a, b)
	return nil
}

// isolate cuts every link of node: each link is set down at its far end,
// so node's own end stays up without a carrier and its packets vanish
// (connections from node hang until their timeouts, as behind a real
// partition), while the far side's routes to node are gone (its
// connections fail at once).
func (lab *netLab) isolate(node string, from ...string) {
	t := lab.t
	t.Helper()
	for _, other := range from {
		l := lab.find(node, other)
		// Down at the far end: A is the far end when node is B.
		farIsA := l.b.name == node
		if err := l.veth.Set(t.Context(), farIsA, !farIsA, false); err != nil {
			t.Fatal(err)
		}
	}
}

// heal brings the links between node and each of others back.
func (lab *netLab) heal(node string, others ...string) {
	lab.t.Helper()
	for _, other := range others {
		lab.up(lab.find(node, other))
	}
}

// setns moves the calling OS thread into the network namespace f.
func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

// dialIn dials addr from inside namespace ns: the socket is created on a
// thread moved into ns, and keeps that namespace once the thread returns.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer home.Close()
		target, err := os.Open("/var/run/netns/" + ns) // where iproute2 keeps them
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		// A thread that cannot go home stays locked and dies with this
		// goroutine, so no other goroutine runs in the wrong namespace.
		if setns(home) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// client returns an HTTP client whose connections start inside n.
func (n *nsNode) client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, n.ns, network, addr)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// startIn runs the binary inside namespace n with args and waits for its
// ready line, like start.
func startIn(t *testing.T, n *nsNode, name string, args ...string) {
	t.Helper()
	startAllIn(t, procSpec{n, name, args})
}

// startAllIn starts components in their namespaces at once, each waiting
// for its own ready line, and fails the test if any did not start. `ip
// netns exec` execs the binary in place, so each process's pid is the
// component's; whatever runs when the test ends is killed.
func startAllIn(t *testing.T, specs ...procSpec) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	ps := make([]*proc, len(specs))
	for i, s := range specs {
		p := &proc{name: s.name, args: append([]string{"netns", "exec", s.node.ns, binary(t)}, s.args...), log: &lockedBuffer{}}
		ps[i] = p
		t.Cleanup(func() {
			p.mu.Lock()
			cmd, done := p.cmd, p.done
			p.mu.Unlock()
			if cmd != nil {
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("--- %s (namespace %s) output ---\n%s", p.name, s.node.name, p.log.String())
			}
		})
		wg.Go(func() { errs[i] = p.launch("ip") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// procSpec is one component for startAllIn.
type procSpec struct {
	node *nsNode
	name string
	args []string
}
