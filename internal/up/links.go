package up

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/understudy/understudy/internal/linkproxy"
	"github.com/understudy/understudy/internal/topology"
)

// Link proxies (links.enabled): every network path between failure domains
// goes through its own in-process linkproxy, so a drill can slow or cut
// exactly one direction of one link. A TCP link is named by who dials
// whom, because who dials is what a cut stops:
//
//	edge-to-R        the edge's probes and client traffic to region R's gateway
//	controller-to-R  the controller's probes and runbook calls to R
//	R-to-controller  R's lease renewals to the controller
//	R-to-S           R's replication batches and lease vouching calls to region S
//
// Each component reads its own copy of the resolved topology in which the
// URLs it dials point at its proxies (up-topology.<component>.yaml); the
// shared up-topology.yaml keeps the direct addresses for operators and
// drills. Every proxy adds links.latency in each direction.

// LinkState is one link proxy in up.json.
type LinkState struct {
	Name     string `json:"name"`
	From     string `json:"from"` // edge, controller or a region
	To       string `json:"to"`   // controller or a region
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
	// Admin is the link's URL in the links admin API
	// (POST {admin}/cut|blackhole|restore, PUT {admin}/latency).
	Admin string `json:"admin"`
}

// linkSet is the running link proxies and their admin API.
type linkSet struct {
	states  []LinkState
	proxies map[string]*linkproxy.Proxy
	files   map[string]string // component name → its topology file
	admin   string            // the links admin API's base URL
	srv     *http.Server
}

// LinkName names the link from one component to another.
func LinkName(from, to string) string { return from + "-to-" + to }

// plannedLink is a link before its proxy starts.
type plannedLink struct{ from, to, upstream string }

// planLinks lists the links of a topology in a stable order.
func planLinks(t *topology.Topology) ([]plannedLink, error) {
	host := func(raw string) (string, error) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("links: %q is not an absolute URL", raw)
		}
		if u.Port() == "" {
			if u.Scheme == "https" {
				return net.JoinHostPort(u.Hostname(), "443"), nil
			}
			return net.JoinHostPort(u.Hostname(), "80"), nil
		}
		return u.Host, nil
	}
	var out []plannedLink
	names := t.RegionNames()
	ctl, err := host(t.Controller.URL)
	if err != nil {
		return nil, err
	}
	for _, r := range names {
		gw, err := host(t.Region(r).URL)
		if err != nil {
			return nil, err
		}
		out = append(out,
			plannedLink{"edge", r, gw},
			plannedLink{"controller", r, gw},
			plannedLink{r, "controller", ctl})
		for _, s := range names {
			if s == r {
				continue
			}
			sgw, err := host(t.Region(s).URL)
			if err != nil {
				return nil, err
			}
			out = append(out, plannedLink{r, s, sgw})
		}
	}
	return out, nil
}

// startLinks starts the link proxies and their admin API when the topology
// enables links, and writes each component's topology file. resolved is
// the resolved topology's text.
func (u *Up) startLinks(ctx context.Context, resolved []byte) error {
	t := u.Topology
	if !t.Links.Enabled {
		return nil
	}
	plan, err := planLinks(t)
	if err != nil {
		return err
	}
	ls := &linkSet{proxies: map[string]*linkproxy.Proxy{}, files: map[string]string{}}
	u.links = ls
	addr := map[string]string{} // link name → proxy address
	reserved := reservedPorts(t)
	for _, pl := range plan {
		name := LinkName(pl.from, pl.to)
		p, err := u.startProxy(ctx, name, u.linkListenHost(pl.from), pl.upstream, reserved)
		if err != nil {
			return err
		}
		ls.proxies[name] = p
		addr[name] = p.Addr().String()
		ls.states = append(ls.states, LinkState{Name: name, From: pl.from, To: pl.to, Listen: addr[name], Upstream: pl.upstream})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("links admin: %w", err)
	}
	ls.admin = "http://" + ln.Addr().String()
	ls.srv = &http.Server{Handler: linkproxy.AdminHandler(ls.proxies, t.Admin.Token.Value()),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	go ls.srv.Serve(ln)
	for i := range ls.states {
		ls.states[i].Admin = ls.admin + "/links/" + ls.states[i].Name
	}

	// Each component dials through its own proxies.
	dir := filepath.Dir(u.TopologyPath)
	write := func(component string, urls map[string]string, controller string) error {
		data, err := rewriteURLs(resolved, urls, controller)
		if err != nil {
			return fmt.Errorf("links: topology of %s: %w", component, err)
		}
		path := filepath.Join(dir, "up-topology."+safeName(component)+".yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
		ls.files[component] = path
		return nil
	}
	via := func(from, to string) string {
		return proxyURL(t.Region(to).URL, addr[LinkName(from, to)])
	}
	names := t.RegionNames()
	for _, from := range []string{"edge", "controller"} {
		urls := map[string]string{}
		for _, r := range names {
			urls[r] = via(from, r)
		}
		if err := write(from, urls, ""); err != nil {
			return err
		}
	}
	for _, r := range names {
		urls := map[string]string{}
		for _, s := range names {
			if s != r {
				urls[s] = via(r, s)
			}
		}
		if err := write("gateway/"+r, urls, proxyURL(t.Controller.URL, addr[LinkName(r, "controller")])); err != nil {
			return err
		}
	}
	return nil
}

// startProxy starts one link proxy on a free loopback port that is none of
// the reserved ones: the ports Resolve picked are free but not yet bound
// by their components, and the kernel may offer them again.
func (u *Up) startProxy(ctx context.Context, name, host, upstream string, reserved map[string]bool) (*linkproxy.Proxy, error) {
	for range 20 {
		p := linkproxy.New(linkproxy.Config{Name: name, Listen: net.JoinHostPort(host, "0"), Upstream: upstream, Latency: u.Topology.Links.Latency.D()},
			u.opts.Log.With("link", name))
		// The proxies outlive Start's context: they stop in Close.
		if err := p.Start(context.WithoutCancel(ctx)); err != nil {
			return nil, fmt.Errorf("link %s: %w", name, err)
		}
		_, port, _ := net.SplitHostPort(p.Addr().String())
		if !reserved[port] {
			return p, nil
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.Close(cctx)
		cancel()
	}
	return nil, fmt.Errorf("link %s: no free port outside the topology's", name)
}

// reservedPorts are the ports of every address a component will listen on.
func reservedPorts(t *topology.Topology) map[string]bool {
	ports := map[string]bool{}
	add := func(addr string) {
		if u, err := url.Parse(addr); err == nil && u.Host != "" {
			addr = u.Host
		}
		if _, port, err := net.SplitHostPort(addr); err == nil {
			ports[port] = true
		}
	}
	add(t.Edge.Listen)
	add(t.Controller.Listen)
	for _, r := range t.Regions {
		add(r.Listen)
		for _, bs := range r.Backends {
			for _, b := range bs {
				if b.Kind == topology.KindSim {
					add(b.URL)
				}
			}
		}
	}
	return ports
}

// withLinks points each component's -f at its own topology file when links
// are enabled.
func (u *Up) withLinks(specs []Spec) []Spec {
	if u.links == nil {
		return specs
	}
	for i, s := range specs {
		key := s.Name
		if s.Kind == "gateway" {
			key = "gateway/" + s.Region // every replica dials through its region's links
		}
		path, ok := u.links.files[key]
		if !ok {
			continue
		}
		args := slices.Clone(s.Args)
		for j := 0; j+1 < len(args); j++ {
			if args[j] == "-f" {
				args[j+1] = path
			}
		}
		specs[i].Args = args
	}
	return specs
}

// Links returns the link proxies, or nil when links are not enabled.
func (u *Up) Links() []LinkState {
	if u.links == nil {
		return nil
	}
	return slices.Clone(u.links.states)
}

// LinksAdmin returns the links admin API's base URL, or "".
func (u *Up) LinksAdmin() string {
	if u.links == nil {
		return ""
	}
	return u.links.admin
}

// Link returns the named link proxy, or nil.
func (u *Up) Link(name string) *linkproxy.Proxy {
	if u.links == nil {
		return nil
	}
	return u.links.proxies[name]
}

// closeLinks stops the admin API and every proxy.
func (u *Up) closeLinks() {
	if u.links == nil {
		return
	}
	if u.links.srv != nil {
		u.links.srv.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, p := range u.links.proxies {
		p.Close(ctx)
	}
}

// proxyURL is raw with its host replaced by addr.
func proxyURL(raw, addr string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "http://" + addr
	}
	u.Host = addr
	return u.String()
}

// rewriteURLs sets regions[].url of the regions named in urls, and
// controller.url when controller is not empty, in a topology's text.
func rewriteURLs(src []byte, urls map[string]string, controller string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("topology is not a YAML mapping")
	}
	root := doc.Content[0]
	if regions := get(root, "regions"); regions != nil {
		for _, r := range regions.Content {
			n := get(r, "name")
			if n == nil {
				continue
			}
			if v, ok := urls[n.Value]; ok {
				set(r, "url", v)
			}
		}
	}
	if controller != "" {
		c := get(root, "controller")
		if c == nil {
			root.Content = append(root.Content, scalar("controller"), &yaml.Node{Kind: yaml.MappingNode})
			c = root.Content[len(root.Content)-1]
		}
		set(c, "url", controller)
	}
	var out bytes.Buffer
	out.WriteString("# Written by `understudy up` with links.enabled: the URLs this component\n# dials point at its link proxies. Do not edit.\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// set puts key: value in mapping m, replacing an existing value.
func set(m *yaml.Node, key, value string) {
	if n := get(m, key); n != nil {
		n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "", value, nil
		return
	}
	m.Content = append(m.Content, scalar(key), scalar(value))
}

// linkLine describes a link for up's output.
func linkLine(s LinkState) string {
	return strings.Join([]string{"link", "name=" + s.Name, "listen=" + s.Listen, "upstream=" + s.Upstream}, " ")
}
