package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/understudy/understudy/internal/drill"
	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

func init() {
	register(&Command{
		Name:  "demo",
		Short: "run two regions, the edge, the controller and a steady load on this machine, with the dashboard",
		Usage: "[--keep] [--chat-rate N] [--agents N] [--load-for DURATION]",
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("keep", false, "keep the temporary data directory (topology, stores, logs) on exit")
			fs.Int("chat-rate", 5, "background chat completions per second (one in five streamed); 0..50")
			fs.Int("agents", 2, "background agent conversations, one turn at a time each; 0..16")
			fs.Duration("load-for", 2*time.Hour, "stop the background load after this long (the demo keeps running); at most 24h")
			fs.Duration("ready-timeout", 90*time.Second, "how long the demo may take to become ready")
		},
		Run: runDemo,
	})
}

// demoAgent is the agent the demo's conversations talk to.
const demoAgent = "support-agent"

// demoModel is the deployment the demo's requests name.
const demoModel = "gpt-4.1-mini"

func runDemo(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) (err error) {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	get := func(name string) any { return fs.Lookup(name).Value.(flag.Getter).Get() }
	keep := get("keep").(bool)
	rate, agents := get("chat-rate").(int), get("agents").(int)
	loadFor, readyTimeout := get("load-for").(time.Duration), get("ready-timeout").(time.Duration)
	switch {
	case rate < 0 || rate > 50:
		return usageErr("--chat-rate %d: must be 0..50", rate)
	case agents < 0 || agents > 16:
		return usageErr("--agents %d: must be 0..16", agents)
	case loadFor <= 0 || loadFor > 24*time.Hour:
		return usageErr("--load-for %s: must be above 0 and at most 24h", loadFor)
	}

	dir, err := os.MkdirTemp("", "understudy-demo-")
	if err != nil {
		return fmt.Errorf("demo data directory: %w", err)
	}
	defer func() {
		if keep {
			fmt.Fprintf(env.Stderr, "demo: data kept in %s\n", dir)
			return
		}
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove demo data: %w", rerr)
		}
	}()
	d, err := startDemo(ctx, env, dir, readyTimeout)
	if d != nil {
		defer d.close()
	}
	if ctx.Err() != nil {
		return nil // interrupted while starting: stop and clean up quietly
	}
	if err != nil {
		return err
	}
	if rate > 0 || agents > 0 {
		if err := d.startLoad(ctx, rate, agents, loadFor); err != nil {
			return err
		}
	}
	dash, err := d.dashboardURL(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "ready edge=%s dashboard=%s key=%s\n", d.up.Topology.Edge.URL, dash, d.key)
	<-ctx.Done()
	return nil
}

// demo is a running demo topology.
type demo struct {
	dir  string
	key  string
	up   *up.Up
	load *drill.Load
	stop context.CancelFunc
	// started is closed once up started every component; done once up
	// stopped watching them (startErr says why when it never started).
	started  chan struct{}
	done     chan struct{}
	startErr error
}

// startDemo writes the example topology (every port 0) and its agent into
// dir, starts every component with up (its lines go to dir/up.log) and
// waits until it is ready (waitReady). The returned demo, even with an
// error, must be closed.
func startDemo(ctx context.Context, env *Env, dir string, readyTimeout time.Duration) (*demo, error) {
	d := &demo{dir: dir, key: "sk-us-" + randHex(16), started: make(chan struct{}), done: make(chan struct{})}
	src := topology.ExampleYAML(topology.ExampleOptions{
		Key: d.key, AdminToken: "adm-" + randHex(16), ReplicationSecret: "rep-" + randHex(16),
	})
	// Drills and the dashboard's buttons fail over again and again: a
	// short cooldown between automatic failovers suits a demo.
	src, err := setYAML(src, []string{"controller", "cooldown"}, "30s")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "topology.yaml")
	if err := os.MkdirAll(filepath.Join(dir, "agents"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, src, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "agents", demoAgent+".yaml"), []byte(exampleAgent), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "up.log"))
	if err != nil {
		return nil, err
	}
	u, err := up.New(path, up.Options{
		Stdout: logf,
		Getenv: env.Getenv,
		Has:    func(name string) bool { return commands[name] != nil },
	})
	if err != nil {
		logf.Close()
		return nil, err
	}
	d.up = u
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stop = stop
	go func() {
		defer close(d.done)
		defer logf.Close()
		if err := u.Start(ctx); err != nil {
			d.startErr = err
			return
		}
		close(d.started)
		u.Wait(wctx)
	}()
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := d.waitReady(rctx); err != nil {
		return d, fmt.Errorf("the demo did not become ready: %w (logs in %s)", err, filepath.Join(dir, "data", "logs"))
	}
	return d, nil
}

// waitReady waits until up started every component, the edge answers a
// chat completion and an agent turn, and no region's drift verdict is
// NOT_READY.
func (d *demo) waitReady(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return d.startErr
	case <-d.started:
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := d.probe(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// probe sends one chat completion and one agent turn through the edge
// and reads the drift verdicts from the controller.
func (d *demo) probe(ctx context.Context) error {
	edge := d.up.Topology.Edge.URL
	chat := map[string]any{"model": demoModel, "max_tokens": 8,
		"messages": []map[string]string{{"role": "user", "content": "demo readiness check"}}}
	if err := d.post(ctx, edge+"/v1/chat/completions", d.key, chat, nil); err != nil {
		return fmt.Errorf("chat through the edge: %w", err)
	}
	turn := map[string]any{"input": "demo readiness check",
		"agent_reference": map[string]string{"type": "agent_reference", "name": demoAgent}}
	if err := d.post(ctx, edge+"/v1/responses", d.key, turn, nil); err != nil {
		return fmt.Errorf("agent turn through the edge: %w", err)
	}
	// The controller refuses an automatic failover to a region whose
	// drift verdict is NOT_READY (READY and UNKNOWN do not refuse): the
	// demo is ready when no region is NOT_READY.
	t := d.up.Topology
	var st struct {
		Drift map[string]string `json:"drift"`
	}
	if err := d.call(ctx, http.MethodGet, t.Controller.URL+"/v1/status", t.Admin.Token.Value(), nil, &st); err != nil {
		return fmt.Errorf("controller status: %w", err)
	}
	for _, name := range t.RegionNames() {
		if v := st.Drift[name]; v == "NOT_READY" {
			return fmt.Errorf("drift verdict of %s is %s", name, v)
		}
	}
	return nil
}

// startLoad starts the steady background load: chat (one in five
// streamed) at rate per second and agents conversations, for at most
// loadFor.
func (d *demo) startLoad(ctx context.Context, rate, agents int, loadFor time.Duration) error {
	l, err := drill.NewLoad(drill.LoadConfig{
		EdgeURL:       d.up.Topology.Edge.URL,
		Key:           d.key,
		Model:         demoModel,
		Agent:         demoAgent,
		ChatRate:      rate - rate/5,
		StreamRate:    rate / 5,
		AgentWorkers:  agents,
		AgentInterval: 500 * time.Millisecond,
		Duration:      loadFor,
		MaxSamples:    20000,
		MaxAcks:       20000,
	})
	if err != nil {
		return fmt.Errorf("demo load: %w", err)
	}
	if err := l.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("demo load: %w", err)
	}
	d.load = l
	return nil
}

// dashboardURL asks the controller for a one-time dashboard link.
func (d *demo) dashboardURL(ctx context.Context) (string, error) {
	t := d.up.Topology
	var ans struct {
		URL string `json:"url"`
	}
	if err := d.post(ctx, t.Controller.URL+"/v1/dashboard/codes", t.Admin.Token.Value(), map[string]string{"purpose": "session"}, &ans); err != nil {
		return "", fmt.Errorf("dashboard link: %w", err)
	}
	return ans.URL, nil
}

func (d *demo) post(ctx context.Context, url, token string, body, out any) error {
	return d.call(ctx, http.MethodPost, url, token, body, out)
}

// call sends a JSON request (no body when body is nil) and decodes a 200
// answer into out when out is not nil.
func (d *demo) call(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// close stops the load, then every component (up stops them in reverse
// start order: SIGTERM, SIGKILL after a grace period).
func (d *demo) close() {
	if d.load != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.load.Close(ctx)
		cancel()
	}
	if d.stop != nil {
		d.stop()
	}
	<-d.done
	d.up.Close(context.Background())
}

// setYAML sets the scalar at path (mapping keys) in a YAML document,
// adding the last key when it is missing; comments are kept.
func setYAML(src []byte, path []string, value string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	n := doc.Content[0]
	for i, key := range path {
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
			}
		}
		last := i == len(path)-1
		switch {
		case next == nil && last:
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: key},
				&yaml.Node{Kind: yaml.ScalarNode, Value: value})
		case next == nil:
			return nil, fmt.Errorf("no %q in the YAML", strings.Join(path[:i+1], "."))
		case last:
			next.Kind, next.Tag, next.Value = yaml.ScalarNode, "", value
		case next.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("%q is not a mapping", strings.Join(path[:i+1], "."))
		default:
			n = next
			continue
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}
