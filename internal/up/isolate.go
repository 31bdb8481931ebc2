package up

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/understudy/understudy/internal/netns"
	"github.com/understudy/understudy/internal/topology"
)

// Isolation (links.isolation): how a region is cut off for a partition.
//
// With netns, every region's gateway and model servers run in a network
// namespace of their own, us-<pid>-<region>, joined to the host by one
// veth pair on a private /30 (10.78.X.1 on the host end, 10.78.X.2 in the
// namespace, X the first subnet free on the host). The region's components
// listen on its namespace address; the link proxies stay in the host:
// those the edge and the controller dial listen on loopback, those the
// region dials listen on the host end of its veth (the namespace has no
// other route), and all of them dial the regions' namespace addresses. A
// partition sets the namespace end of the pair down: the region's own
// connections fail at once (it has no route left), and what the host sends
// to it vanishes into a link without carrier, so the edge, the controller
// and the other regions see timeouts, as behind a real partition. The
// host end stays up on purpose: a host end set down takes its route along,
// and the region's address would follow the host's default route off the
// machine. Heal sets the namespace end up again.
//
// With proxy (or without root), a partition cuts the region's link
// proxies in both directions instead.

// nsPrefix starts the name of every namespace `up` creates; this process's
// pid follows, so a later `up` can sweep what a killed one left behind.
const nsPrefix = "us-"

// Partition methods, as the control API and drill reports name them.
const (
	MethodNetns     = "netns"
	MethodLinkProxy = "linkproxy"
)

// NamespaceState is one region's namespace in up.json.
type NamespaceState struct {
	Region  string `json:"region"`
	Netns   string `json:"netns"`
	HostDev string `json:"host_dev"`  // the host end of the veth pair
	Host    string `json:"host_addr"` // its address, where the region's link proxies listen
	Addr    string `json:"addr"`      // the namespace end's address, where the region listens
}

// isolation is how this run isolates regions.
type isolation struct {
	method string // MethodNetns or MethodLinkProxy
	reason string // why not netns, when links.isolation is auto
	nets   map[string]*regionNet

	mu sync.Mutex // serialises Partition and closeIsolation
}

// regionNet is one region's namespace and veth pair.
type regionNet struct {
	NamespaceState
	link netns.Link // A: the host end, B: the namespace end
}

// PartitionResult is the control API's answer to partition and heal.
type PartitionResult struct {
	Region      string `json:"region"`
	Method      string `json:"method"` // netns or linkproxy
	Partitioned bool   `json:"partitioned"`
	// Detail says what was done, for reports.
	Detail string `json:"detail"`
	// Links are the link proxies cut or restored (linkproxy).
	Links []string `json:"links,omitempty"`
}

// chooseIsolation decides how regions are isolated; for netns it sweeps
// stale namespaces and creates this run's, and returns resolved rewritten
// so that each region listens on its namespace address.
func (u *Up) chooseIsolation(ctx context.Context, resolved []byte) ([]byte, error) {
	t := u.Topology
	if !t.Links.Enabled {
		return resolved, nil
	}
	u.iso = &isolation{method: MethodLinkProxy}
	if t.Links.Isolation == topology.IsolationProxy {
		u.iso.reason = "links.isolation is proxy"
		return resolved, nil
	}
	why := t.NetnsBlockers()
	if len(why) == 0 {
		if err := u.opts.NetnsAvailable(ctx); err != nil {
			why = append(why, err.Error())
		}
	}
	if len(why) > 0 {
		if t.Links.Isolation == topology.IsolationNetns {
			return nil, fmt.Errorf("links.isolation netns: %s", strings.Join(why, "; "))
		}
		u.iso.reason = strings.Join(why, "; ")
		return resolved, nil
	}
	if gone, err := netns.Sweep(ctx, nsPrefix); err != nil {
		u.opts.Log.Warn("sweep stale namespaces", "err", err)
	} else if len(gone) > 0 {
		u.opts.Log.Info("deleted namespaces of dead runs", "netns", gone)
	}
	u.iso.method, u.iso.nets = MethodNetns, map[string]*regionNet{}
	if err := u.createNets(ctx); err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for r, n := range u.iso.nets {
		addrs[r] = n.Addr
	}
	return isolateText(resolved, addrs)
}

// createNets creates a namespace and a veth pair per region, under the
// cross-process subnet lock.
func (u *Up) createNets(ctx context.Context) error {
	unlock, err := netns.LockSubnets()
	if err != nil {
		return err
	}
	defer unlock()
	used, err := netns.HostPrefixes(ctx)
	if err != nil {
		return err
	}
	names := u.Topology.RegionNames()
	subnets, err := netns.FreeSubnets(len(names), used)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	for i, r := range names {
		base := subnets[i].Addr().As4()
		host, addr := base, base
		host[3]++
		addr[3] += 2
		n := &regionNet{NamespaceState: NamespaceState{Region: r, Netns: fmt.Sprintf("%s%d-%s", nsPrefix, pid, r),
			HostDev: fmt.Sprintf("us%d-%d", pid, i), Host: netip.AddrFrom4(host).String(), Addr: netip.AddrFrom4(addr).String()}}
		n.link = netns.Link{ADev: n.HostDev, BNS: n.Netns, BDev: "eth0",
			A: netip.PrefixFrom(netip.AddrFrom4(host), 30), B: netip.PrefixFrom(netip.AddrFrom4(addr), 30)}
		if err := netns.Add(ctx, n.Netns); err != nil {
			return fmt.Errorf("region %s: %w", r, err)
		}
		u.iso.nets[r] = n // from here on Close deletes it
		if err := n.link.Add(ctx); err != nil {
			return fmt.Errorf("region %s: %w", r, err)
		}
		// The host end must keep its route while its peer is down (see
		// netns.Available for the host-wide setting).
		os.WriteFile("/proc/sys/net/ipv4/conf/"+n.HostDev+"/ignore_routes_with_linkdown", []byte("0"), 0o644)
	}
	return nil
}

// isolateText rewrites a resolved topology's text for regions in
// namespaces: each region in addrs listens on its address (port kept), its
// url and its sim backends' urls point there, and admin.allow_remote is
// set, since the region's admin API now sees the host end of its veth as
// its peer (a namespace routes only to its own /30, so no other machine
// can hold a connection with it).
func isolateText(src []byte, addrs map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("topology is not a YAML mapping")
	}
	root := doc.Content[0]
	moveHost := func(hostport, addr string) (string, error) {
		_, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", err
		}
		return net.JoinHostPort(addr, port), nil
	}
	regions := get(root, "regions")
	if regions == nil {
		return nil, fmt.Errorf("topology has no regions")
	}
	for _, r := range regions.Content {
		name := get(r, "name")
		if name == nil {
			continue
		}
		addr, ok := addrs[name.Value]
		if !ok {
			continue
		}
		listen := get(r, "listen")
		if listen == nil {
			return nil, fmt.Errorf("region %s has no listen address", name.Value)
		}
		hp, err := moveHost(listen.Value, addr)
		if err != nil {
			return nil, fmt.Errorf("region %s listen: %w", name.Value, err)
		}
		listen.Value = hp
		if u := get(r, "url"); u != nil && u.Value != "" {
			set(r, "url", proxyURL(u.Value, hp))
		}
		bs := get(r, "backends")
		if bs == nil || bs.Kind != yaml.MappingNode {
			continue
		}
		for i := 1; i < len(bs.Content); i += 2 {
			for _, b := range bs.Content[i].Content {
				k, bu := get(b, "kind"), get(b, "url")
				if k == nil || k.Value != topology.KindSim || bu == nil {
					continue
				}
				pu, err := url.Parse(bu.Value)
				if err != nil {
					return nil, fmt.Errorf("region %s backend url: %w", name.Value, err)
				}
				if pu.Host, err = moveHost(pu.Host, addr); err != nil {
					return nil, fmt.Errorf("region %s backend url: %w", name.Value, err)
				}
				bu.Value = pu.String()
			}
		}
	}
	admin := get(root, "admin")
	if admin == nil {
		root.Content = append(root.Content, scalar("admin"), &yaml.Node{Kind: yaml.MappingNode})
		admin = root.Content[len(root.Content)-1]
	}
	set(admin, "allow_remote", "true")
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Isolation returns how regions are isolated: MethodNetns,
// MethodLinkProxy, or "" when links are not enabled.
func (u *Up) Isolation() string {
	if u.iso == nil {
		return ""
	}
	return u.iso.method
}

// Namespaces returns the regions' namespaces (netns isolation), in region
// order.
func (u *Up) Namespaces() []NamespaceState {
	if u.iso == nil || u.Topology == nil {
		return nil
	}
	var out []NamespaceState
	for _, r := range u.Topology.RegionNames() {
		if n := u.iso.nets[r]; n != nil {
			out = append(out, n.NamespaceState)
		}
	}
	return out
}

// regionNetns is the namespace the region's components run in, or "".
func (u *Up) regionNetns(region string) string {
	if u.iso == nil || region == "" {
		return ""
	}
	if n := u.iso.nets[region]; n != nil {
		return n.Netns
	}
	return ""
}

// linkListenHost is the address a link proxy from component from listens
// on: the host end of from's veth when from is a region in a namespace,
// else loopback.
func (u *Up) linkListenHost(from string) string {
	if u.iso != nil {
		if n := u.iso.nets[from]; n != nil {
			return n.Host
		}
	}
	return "127.0.0.1"
}

// partitionLinks are the link proxies that join region to everything else.
func partitionLinks(t *topology.Topology, region string) []string {
	names := []string{LinkName("edge", region), LinkName("controller", region), LinkName(region, "controller")}
	for _, r := range t.RegionNames() {
		if r != region {
			names = append(names, LinkName(region, r), LinkName(r, region))
		}
	}
	return names
}

// Partition cuts region off from the edge, the controller and the other
// regions (partition true), or heals it, by the run's method.
func (u *Up) Partition(ctx context.Context, region string, partition bool) (PartitionResult, error) {
	res := PartitionResult{Region: region, Partitioned: partition}
	if u.iso == nil || u.Topology == nil {
		return res, fmt.Errorf("links.enabled is false: no link proxies or namespaces to cut")
	}
	if u.Topology.Region(region) == nil {
		return res, fmt.Errorf("no region %q", region)
	}
	u.iso.mu.Lock()
	defer u.iso.mu.Unlock()
	res.Method = u.iso.method
	if n := u.iso.nets[region]; n != nil {
		if err := n.link.Set(ctx, false, true, !partition); err != nil {
			return res, err
		}
		state := "up"
		if partition {
			state = "down"
		}
		res.Detail = fmt.Sprintf("set %s in namespace %s (%s) %s", n.link.BDev, n.Netns, n.Addr, state)
	} else {
		res.Links = partitionLinks(u.Topology, region)
		for _, name := range res.Links {
			p := u.Link(name)
			if p == nil {
				return res, fmt.Errorf("no link proxy %s", name)
			}
			if partition {
				p.Cut()
			} else {
				p.Restore()
			}
		}
		verb := "restored"
		if partition {
			verb = "cut"
		}
		res.Detail = verb + " links " + strings.Join(res.Links, ", ")
	}
	return res, nil
}

// closeIsolation deletes this run's namespaces (their veth pairs go with
// them); the components in them must have exited.
func (u *Up) closeIsolation() {
	if u.iso == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u.iso.mu.Lock()
	defer u.iso.mu.Unlock()
	for _, r := range slices.Sorted(maps.Keys(u.iso.nets)) {
		n := u.iso.nets[r]
		// The kernel destroys a deleted namespace's devices later, in the
		// background; deleting the host end first takes the pair away now.
		netns.IP(ctx, "link", "del", n.HostDev)
		if err := netns.Delete(ctx, n.Netns); err != nil {
			u.opts.Log.Warn("delete namespace", "netns", n.Netns, "err", err)
		}
	}
	u.iso.nets = nil
}
