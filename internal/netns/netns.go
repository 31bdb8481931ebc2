package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// IP runs `ip args...` and returns an error that carries the command and
// its output.
func IP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Available returns nil when this process can create network namespaces,
// else the reason: not root, no `ip` command, hosts that ignore routes of
// links without carrier (see Link), or `ip netns add` failing. It creates
// and deletes the namespace probe to find out.
func Available(ctx context.Context, probe string) error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("not root (uid %d)", uid)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (install iproute2): %w", err)
	}
	if v, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/ignore_routes_with_linkdown"); err == nil && strings.TrimSpace(string(v)) != "0" {
		return errors.New("net.ipv4.conf.all.ignore_routes_with_linkdown is set: a cut link's addresses would follow the default route")
	}
	if err := IP(ctx, "netns", "add", probe); err != nil {
		return err
	}
	return IP(ctx, "netns", "del", probe)
}

// Add creates the namespace name with its loopback up.
func Add(ctx context.Context, name string) error {
	if err := IP(ctx, "netns", "add", name); err != nil {
		return err
	}
	if err := IP(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		return errors.Join(err, Delete(context.WithoutCancel(ctx), name))
	}
	return nil
}

// Delete deletes the namespace name; the veth ends in it go with it, and
// so do their peers.
func Delete(ctx context.Context, name string) error {
	return IP(ctx, "netns", "del", name)
}

// List returns the names of the namespaces `ip netns` knows.
func List(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

// Owner returns the pid in a namespace name of the form prefix<pid>-…, or
// false.
func Owner(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// Sweep deletes the namespaces named prefix<pid>-… whose process is gone
// (a killed earlier run) and returns their names. Namespaces of running
// processes, and of this one, are left alone.
func Sweep(ctx context.Context, prefix string) ([]string, error) {
	names, err := List(ctx)
	if err != nil {
		return nil, err
	}
	var gone []string
	var errs []error
	for _, name := range names {
		pid, ok := Owner(name, prefix)
		if !ok || pid == os.Getpid() || running(pid) {
			continue
		}
		if err := Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, name)
	}
	return gone, errors.Join(errs...)
}

// running reports whether a process with this pid exists (EPERM means it
// does, owned by someone else).
func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Link is one veth pair: the A end in namespace ANS (empty: the host's),
// the B end in namespace BNS (required). Each end gets its address, with
// its prefix length.
type Link struct {
	ANS, ADev string
	BNS, BDev string
	A, B      netip.Prefix
}

// nsArgs prefixes args with -n ns when ns is not the host's.
func nsArgs(ns string, args ...string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"-n", ns}, args...)
}

// Add creates the pair, addresses both ends and brings them up.
func (l Link) Add(ctx context.Context) error {
	if l.BNS == "" {
		return fmt.Errorf("veth %s: the B end needs a namespace", l.ADev)
	}
	steps := [][]string{
		nsArgs(l.ANS, "link", "add", l.ADev, "type", "veth", "peer", "name", l.BDev, "netns", l.BNS),
		nsArgs(l.ANS, "addr", "add", l.A.String(), "dev", l.ADev),
		nsArgs(l.BNS, "addr", "add", l.B.String(), "dev", l.BDev),
	}
	for _, s := range steps {
		if err := IP(ctx, s...); err != nil {
			return err
		}
	}
	return l.Set(ctx, true, true, true)
}

// Set sets the A end, the B end or both up (up true) or down. An end set
// down takes its connected routes with it, and its peer loses its carrier:
// the peer keeps its routes, and what it sends into the pair vanishes.
//
// An end set up is announced to its peer at once: while it was down the
// peer's neighbour entry for it went INCOMPLETE (ARP probes 1 s apart,
// packets queued behind them), and the first connections after the heal
// would wait for the next probe, up to a second (measured: 168–674 ms).
// Writing the entry with the end's MAC sends what is queued and resolves
// nothing again.
func (l Link) Set(ctx context.Context, a, b, up bool) error {
	state := "up"
	if !up {
		state = "down"
	}
	if a {
		if err := IP(ctx, nsArgs(l.ANS, "link", "set", l.ADev, state)...); err != nil {
			return err
		}
	}
	if b {
		if err := IP(ctx, nsArgs(l.BNS, "link", "set", l.BDev, state)...); err != nil {
			return err
		}
	}
	if !up {
		return nil
	}
	if a {
		if err := announce(ctx, l.ANS, l.ADev, l.A.Addr(), l.BNS, l.BDev); err != nil {
			return err
		}
	}
	if b {
		if err := announce(ctx, l.BNS, l.BDev, l.B.Addr(), l.ANS, l.ADev); err != nil {
			return err
		}
	}
	return nil
}

// announce writes the neighbour entry for addr, the address of dev in ns,
// into the table of its peer peerDev in peerNS, with dev's MAC.
func announce(ctx context.Context, ns, dev string, addr netip.Addr, peerNS, peerDev string) error {
	out, err := exec.CommandContext(ctx, "ip", nsArgs(ns, "-j", "link", "show", "dev", dev)...).Output()
	if err != nil {
		return fmt.Errorf("ip link show %s: %w", dev, err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
		return fmt.Errorf("ip link show %s: no MAC address in %q", dev, out)
	}
	return IP(ctx, nsArgs(peerNS, "neigh", "replace", addr.String(), "lladdr", links[0].Address, "dev", peerDev, "nud", "reachable")...)
}

// Command returns the command that runs bin with args inside namespace ns.
// `ip netns exec` execs bin in place, so the command's pid is bin's: a
// signal sent to it reaches bin.
func Command(ns, bin string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

// HostPrefixes returns every IPv4 prefix the host namespace has an address
// in or a route to (the default route aside), so a caller can pick
// addresses that collide with nothing.
func HostPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := exec.CommandContext(ctx, "ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -4 -o addr show: %w", err)
	}
	for line := range strings.Lines(string(addrs)) {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	routes, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -4 route show table all: %w", err)
	}
	for line := range strings.Lines(string(routes)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unreachable" || dst == "blackhole" || dst == "prohibit" || dst == "throw" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// LockSubnets serialises picking and taking subnets between processes (an
// exclusive flock on a file in /run, or the temporary directory); call the
// returned function once the links hold their addresses.
func LockSubnets() (unlock func(), err error) {
	dir := "/run"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "understudy-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// FreeSubnets returns n /30 subnets 10.78.X.0/30 (X counting up from 0)
// that overlap none of used.
func FreeSubnets(n int, used []netip.Prefix) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for x := 0; x < 256 && len(out) < n; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 78, byte(x), 0}), 30)
		free := true
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("no %d free /30 subnets left in 10.78.0.0/16", n)
	}
	return out, nil
}
