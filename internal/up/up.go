package up

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/understudy/understudy/internal/netns"
	"github.com/understudy/understudy/internal/topology"
)

// Options tune a run.
type Options struct {
	// Binary is the understudy executable children run. Default: this process's.
	Binary string
	// Stdout receives one `ready …` line per component and exit reports.
	Stdout io.Writer
	// Getenv resolves ${ENV} references. Default os.Getenv.
	Getenv func(string) string
	// Has reports whether the binary has a subcommand (edge, controller);
	// components whose command is missing are not started. Default: all.
	Has func(command string) bool
	// ReadyTimeout bounds each component's start. Default 20s.
	ReadyTimeout time.Duration
	// Grace is how long a stopping child gets before SIGKILL. Default 5s.
	Grace time.Duration
	// NetnsAvailable returns nil when network namespaces can be created,
	// else why not (links.isolation auto and netns). Default
	// netns.Available.
	NetnsAvailable func(ctx context.Context) error
	Log            *slog.Logger
}

// Up is one run of a topology's components.
type Up struct {
	path string
	opts Options

	// Topology is the resolved topology the children run.
	Topology *topology.Topology
	// TopologyPath is where the resolved topology was written.
	TopologyPath string

	lock       *os.File
	procs      group
	control    string // the control API's URL
	controlSrv *http.Server
	waitCtx    context.Context
	links      *linkSet   // link proxies when links.enabled (links.go)
	iso        *isolation // how regions are cut off when links.enabled (isolate.go)
	balancers  balancers  // regions' balancers when regions[].replicas > 1 (balance.go)
}

// New prepares a run of the topology file at path; it starts nothing.
func New(path string, opts Options) (*Up, error) {
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Has == nil {
		opts.Has = func(string) bool { return true }
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 20 * time.Second
	}
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.NetnsAvailable == nil {
		opts.NetnsAvailable = func(ctx context.Context) error {
			return netns.Available(ctx, fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid()))
		}
	}
	return &Up{path: path, opts: opts}, nil
}

// Start validates the topology, resolves free ports, writes the resolved
// topology and starts every component, each waited for in turn. On error
// everything already started is stopped.
func (u *Up) Start(ctx context.Context) (err error) {
	if _, err := topology.Load(u.path, u.opts.Getenv); err != nil {
		return err
	}
	// The control API's port is taken before any other is picked, so the
	// ports Resolve picks for components cannot collide with it.
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() {
		if u.controlSrv == nil {
			ctl.Close()
		}
	}()
	src, err := os.ReadFile(u.path)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(u.path))
	if err != nil {
		return err
	}
	resolved, err := Resolve(src, dir, FreePort)
	if err != nil {
		return fmt.Errorf("resolve ports: %w", err)
	}
	t, err := u.parseResolved(resolved, dir)
	if err != nil {
		return err
	}
	u.Topology = t
	dataDir := t.Path(t.DataDir)
	if err := os.MkdirAll(filepath.Join(dataDir, "logs"), 0o755); err != nil {
		return err
	}
	if u.lock, err = lockDir(dataDir); err != nil {
		return err
	}
	u.TopologyPath = filepath.Join(dataDir, "up-topology.yaml")
	if err := os.WriteFile(u.TopologyPath, resolved, 0o600); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			u.Close(context.Background())
		}
	}()
	isolated, err := u.chooseIsolation(ctx, resolved)
	if err != nil {
		return err
	}
	if !bytes.Equal(isolated, resolved) {
		resolved = isolated
		if u.Topology, err = u.parseResolved(resolved, dir); err != nil {
			return err
		}
		if err := os.WriteFile(u.TopologyPath, resolved, 0o600); err != nil {
			return err
		}
	}
	if line := u.isolationLine(); line != "" {
		fmt.Fprintln(u.opts.Stdout, line)
	}
	u.serveControl(ctl)
	if err := u.startLinks(ctx, resolved); err != nil {
		return err
	}
	for _, l := range u.Links() {
		fmt.Fprintln(u.opts.Stdout, linkLine(l))
	}
	for _, s := range u.withLinks(u.specs()) {
		logPath := filepath.Join(dataDir, "logs", safeName(s.Name)+".log")
		p, err := start(ctx, u.opts.Binary, s, logPath, u.opts.ReadyTimeout)
		if err != nil {
			return err
		}
		u.procs.add(p)
		line := "ready component=" + p.Kind
		if p.Region != "" {
			line += " region=" + p.Region
		}
		if p.Replica > 0 {
			line += " replica=" + strconv.Itoa(p.Replica)
		}
		for _, k := range []string{"url", "admin"} {
			if v := p.Ready[k]; v != "" {
				line += " " + k + "=" + v
			}
		}
		fmt.Fprintln(u.opts.Stdout, line)
		if p.Replica > 0 {
			if err := u.balance(ctx, p.Region); err != nil {
				return err
			}
		}
		if err := u.writeState(); err != nil {
			return err
		}
	}
	return nil
}

// parseResolved parses, defaults and validates a resolved topology's text.
func (u *Up) parseResolved(resolved []byte, dir string) (*topology.Topology, error) {
	t, err := topology.Parse(bytes.NewReader(resolved))
	if err != nil {
		return nil, fmt.Errorf("resolved topology: %w", err)
	}
	t.Dir = dir
	if err := t.ExpandSecrets(u.opts.Getenv); err != nil {
		return nil, err
	}
	t.Default()
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("resolved topology: %w", err)
	}
	return t, nil
}

// isolationLine describes the isolation for up's output, or "".
func (u *Up) isolationLine() string {
	if u.iso == nil {
		return ""
	}
	line := "isolation method=" + u.iso.method
	for _, n := range u.Namespaces() {
		line += fmt.Sprintf(" %s=%s(%s)", n.Region, n.Netns, n.Addr)
	}
	if u.iso.reason != "" {
		line += fmt.Sprintf(" reason=%q", u.iso.reason)
	}
	return line
}

// specs lists the components in start order: model servers, gateways, edge,
// controller. A hot-cold standby's gateway is left to the controller.
func (u *Up) specs() []Spec {
	t := u.Topology
	var specs []Spec
	primary := t.Primary().Name
	for _, rn := range t.RegionNames() {
		r := t.Region(rn)
		for _, dep := range t.Deployments {
			for _, b := range r.Backends[dep.Name] {
				if b.Kind != topology.KindSim {
					continue
				}
				args := []string{"modelsim", "--listen", hostPort(b.URL), "--model", b.Model, "--version", dep.Version,
					"--admin-token", t.Admin.Token.Value()}
				if b.Sim.TTFT > 0 {
					args = append(args, "--ttft", b.Sim.TTFT.String())
				}
				if b.Sim.TokensPerSecond > 0 {
					args = append(args, "--tps", strconv.FormatFloat(b.Sim.TokensPerSecond, 'f', -1, 64))
				}
				if b.Sim.RPM > 0 {
					args = append(args, "--rpm", strconv.Itoa(b.Sim.RPM))
				}
				if b.Sim.TPM > 0 {
					args = append(args, "--tpm", strconv.Itoa(b.Sim.TPM))
				}
				specs = append(specs, Spec{Name: "modelsim/" + rn + "/" + b.Name, Kind: "modelsim", Region: rn, Args: args,
					Netns: u.regionNetns(rn)})
			}
		}
	}
	for _, rn := range t.RegionNames() {
		if t.Pattern == topology.HotCold && rn != primary {
			continue
		}
		if n := t.Region(rn).Replicas; n > 1 {
			// Replicas listen on loopback port-0 addresses of the region's
			// host; the region's balancer (balance.go) takes its listen.
			host, _, _ := net.SplitHostPort(t.Region(rn).Listen)
			for i := 1; i <= n; i++ {
				specs = append(specs, Spec{Name: ReplicaName(rn, i), Kind: "gateway", Region: rn, Replica: i,
					Args: []string{"gateway", "-f", u.TopologyPath, "--region", rn, "--listen", net.JoinHostPort(host, "0")}, Netns: u.regionNetns(rn)})
			}
			continue
		}
		specs = append(specs, Spec{Name: "gateway/" + rn, Kind: "gateway", Region: rn,
			Args: []string{"gateway", "-f", u.TopologyPath, "--region", rn}, Netns: u.regionNetns(rn)})
	}
	for _, kind := range []string{"edge", "controller"} {
		if u.opts.Has(kind) {
			specs = append(specs, Spec{Name: kind, Kind: kind, Args: []string{kind, "-f", u.TopologyPath}})
		}
	}
	return specs
}

// Procs returns the components started so far.
func (u *Up) Procs() []*Proc { return u.procs.list() }

// Wait reports each component that exits, until ctx is done.
func (u *Up) Wait(ctx context.Context) {
	u.procs.mu.Lock()
	u.waitCtx = ctx
	u.procs.mu.Unlock()
	for _, p := range u.procs.list() {
		u.watch(p)
	}
	<-ctx.Done()
}

// watch reports p's exit, unless Wait's context ends first.
func (u *Up) watch(p *Proc) {
	u.procs.mu.Lock()
	ctx := u.waitCtx
	u.procs.mu.Unlock()
	if ctx == nil {
		return // not waiting yet: Wait watches every process when it starts
	}
	go func() {
		select {
		case <-p.Done():
			fmt.Fprintf(u.opts.Stdout, "exited component=%s region=%s status=%q log=%s\n", p.Kind, p.Region, exitErr(p.err), p.Log)
			u.opts.Log.Warn("component exited", "component", p.Name, "status", exitErr(p.err))
		case <-ctx.Done():
		}
	}()
}

// Close stops every component, the last started first.
func (u *Up) Close(ctx context.Context) error {
	if u.controlSrv != nil {
		u.controlSrv.Close()
	}
	defer u.closeIsolation() // last: the components and proxies are gone
	defer u.closeLinks()
	defer u.balancers.close()
	ps := u.procs.list()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].stop(u.opts.Grace)
	}
	if u.lock != nil {
		u.lock.Close()
		u.lock = nil
	}
	return nil
}

// State is what up.json in the data directory records.
type State struct {
	Topology   string           `json:"topology"`
	Pid        int              `json:"pid"`
	Control    string           `json:"control"` // the control API's URL (admin token)
	Components []ComponentState `json:"components"`

	// Links are the link proxies (links.enabled); LinksAdmin their admin API.
	Links      []LinkState `json:"links,omitempty"`
	LinksAdmin string      `json:"links_admin,omitempty"`
	// Isolation is how a partition cuts a region off (links.enabled):
	// "netns" (Namespaces lists each region's) or "linkproxy".
	Isolation  string           `json:"isolation,omitempty"`
	Namespaces []NamespaceState `json:"namespaces,omitempty"`

	// Balancers are the regions' in-region balancers (regions[].replicas > 1).
	Balancers []BalancerState `json:"balancers,omitempty"`
}

// ComponentState is one component in up.json.
type ComponentState struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Region string `json:"region,omitempty"`
	// Replica is the gateway replica's number (regions[].replicas > 1).
	Replica int      `json:"replica,omitempty"`
	Pid     int      `json:"pid"`
	URL     string   `json:"url"`
	Log     string   `json:"log"`
	Args    []string `json:"args"`
	// Netns is the network namespace the component runs in, if any.
	Netns string `json:"netns,omitempty"`
}

func (u *Up) writeState() error {
	st := State{Topology: u.TopologyPath, Pid: os.Getpid(), Control: u.control, Links: u.Links(), LinksAdmin: u.LinksAdmin(),
		Isolation: u.Isolation(), Namespaces: u.Namespaces(), Balancers: u.Balancers()}
	for _, p := range u.procs.list() {
		st.Components = append(st.Components, ComponentState{Name: p.Name, Kind: p.Kind, Region: p.Region, Replica: p.Replica,
			Pid: p.Pid(), URL: p.URL, Log: p.Log, Args: p.Args, Netns: p.Netns})
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(u.Topology.Path(u.Topology.DataDir), "up.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lockDir takes an exclusive lock on dir/up.lock so two runs never share a
// data directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "up.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another `understudy up`", dir)
	}
	return f, nil
}

func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}

func safeName(s string) string { return strings.ReplaceAll(s, "/", "-") }

// Control returns the URL of the control API (empty before Start).
func (u *Up) Control() string { return u.control }
