package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	a, b         *nsNode
	devA, devB   string
	addrA, addrB string
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
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are required under CI: "+format, args...)
		}
		t.Skipf("network namespaces unavailable: "+format, args...)
	}
	if os.Geteuid() != 0 {
		unavailable("not root (uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		unavailable("no ip command (iproute2): %v", err)
	}
	probe := fmt.Sprintf("%s%d-probe", netnsPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		unavailable("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", probe).Run()
}

// ipCmd runs ip with args and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// sweepStaleNamespaces deletes namespaces a killed earlier run of these
// tests left behind (their pid is gone).
func sweepStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // that run is still going
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// newNetLab creates one namespace per name, with its loopback up and its
// node address. Every namespace (and so every veth in it) is deleted when
// the test ends, pass or fail; components started in them with startIn
// are killed first (cleanups run last-registered first).
func newNetLab(t *testing.T, names ...string) *netLab {
	t.Helper()
	requireNetns(t)
	sweepStaleNamespaces()
	lab := &netLab{t: t, nodes: map[string]*nsNode{}}
	id := labSeq.Add(1)
	for i, name := range names {
		n := &nsNode{name: name, ns: fmt.Sprintf("%s%d-%d-%s", netnsPrefix, os.Getpid(), id, name), ip: fmt.Sprintf("10.77.0.%d", i+1)}
		ipCmd(t, "netns", "add", n.ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", n.ns).CombinedOutput(); err != nil {
				t.Errorf("delete namespace %s: %v: %s", n.ns, err, out)
			}
		})
		ipCmd(t, "-n", n.ns, "link", "set", "lo", "up")
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
	l := &nsLink{a: lab.node(a), b: lab.node(b),
		devA: fmt.Sprintf("v%d-%s%s", k, a, b), devB: fmt.Sprintf("v%d-%s%s", k, b, a),
		addrA: fmt.Sprintf("10.77.%d.1", k), addrB: fmt.Sprintf("10.77.%d.2", k)}
	ipCmd(t, "-n", l.a.ns, "link", "add", l.devA, "type", "veth", "peer", "name", l.devB, "netns", l.b.ns)
	ipCmd(t, "-n", l.a.ns, "addr", "add", l.addrA+"/30", "dev", l.devA)
	ipCmd(t, "-n", l.b.ns, "addr", "add", l.addrB+"/30", "dev", l.devB)
	lab.links = append(lab.links, l)
	lab.up(l)
}

// up brings both ends of l up and (re)installs the node routes, which a
// link going down takes with it.
func (lab *netLab) up(l *nsLink) {
	t := lab.t
	t.Helper()
	ipCmd(t, "-n", l.a.ns, "link", "set", l.devA, "up")
	ipCmd(t, "-n", l.b.ns, "link", "set", l.devB, "up")
	ipCmd(t, "-n", l.a.ns, "route", "replace", l.b.ip+"/32", "via", l.addrB, "dev", l.devA)
	ipCmd(t, "-n", l.b.ns, "route", "replace", l.a.ip+"/32", "via", l.addrA, "dev", l.devB)
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
		far, dev := l.b, l.devB
		if l.b.name == node {
			far, dev = l.a, l.devA
		}
		ipCmd(t, "-n", far.ns, "link", "set", dev, "down")
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
