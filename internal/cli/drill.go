package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/understudy/understudy/internal/drift"
	"github.com/understudy/understudy/internal/drill"
	"github.com/understudy/understudy/internal/topology"
)

func init() {
	register(&Command{
		Name:  "drill",
		Short: "inject a fault under load, measure detection, reroute, RTO and RPO, and write a report",
		Usage: `-f topology.yaml --scenario NAME [--duration 60s] [--report DIR] [--demo]

Runs against a topology started by ` + "`understudy up -f topology.yaml`" + ` (found through
data_dir/up.json), or with --demo starts one itself on loopback (the file given
with -f copied with every port set to 0, or the example topology of ` + "`understudy init`" + `).
Scenarios: ` + strings.Join(drill.ScenarioNames(), ", ") + `.
Writes report.json, report.md and report.html into --report (default
data_dir/drills/SCENARIO-TIME). Exit status 1 when the drill FAILED: the
topology's RTO or RPO target was missed or an acknowledged item was lost.
See docs/DRILLS.md.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.String("scenario", "", "scenario to run (required): "+strings.Join(drill.ScenarioNames(), ", "))
			fs.Duration("duration", 60*time.Second, "nominal length: a fifth before the fault, two fifths with it (no failover), a fifth after")
			fs.String("report", "", "directory for report.json, report.md and report.html (default data_dir/drills/SCENARIO-TIME)")
			fs.Bool("demo", false, "start a topology with `up` for the drill (every port 0, link proxies on) and stop it afterwards")
			fs.Int("chat-rate", 8, "chat completions per second")
			fs.Int("stream-rate", 4, "streamed chat completions per second")
			fs.Int("agents", 4, "agent conversations driven at once")
			fs.Duration("link-latency", 100*time.Millisecond, "slow-link: one-way latency added between the regions")
			fs.Duration("backend-latency", 1500*time.Millisecond, "slow-backend: latency added by the primary's model servers")
		},
		Run: runDrill,
	})
}

func runDrill(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	get := func(name string) any { return fs.Lookup(name).Value.(flag.Getter).Get() }
	scenario := get("scenario").(string)
	if scenario == "" {
		return usageErr("--scenario is required: one of %s", strings.Join(drill.ScenarioNames(), ", "))
	}
	if _, ok := drill.Scenarios[scenario]; !ok {
		return usageErr("--scenario %q: want one of %s", scenario, strings.Join(drill.ScenarioNames(), ", "))
	}
	dur := get("duration").(time.Duration)
	if dur < 5*time.Second || dur > time.Hour {
		return usageErr("--duration %s: must be between 5s and 1h", dur)
	}
	fileSet := false
	fs.Visit(func(f *flag.Flag) { fileSet = fileSet || f.Name == "f" })
	demo := get("demo").(bool)

	var user *topology.Topology
	var stopDemo func()
	if demo {
		path := ""
		if fileSet {
			path = get("f").(string)
		}
		p, stop, err := startDrillDemo(ctx, env, path)
		if stop != nil {
			defer stop()
		}
		if err != nil {
			return err
		}
		stopDemo = stop
		if user, err = topology.Load(p, env.Getenv); err != nil {
			return err
		}
	} else {
		var err error
		if user, err = loadTopology(env, fs); err != nil {
			return err
		}
	}
	sys, err := drill.Discover(user, env.Getenv)
	if err != nil {
		return err
	}
	opts := drill.Options{
		Scenario: scenario, Duration: dur, Progress: env.Stdout, Targets: &user.Targets,
		ChatRate: get("chat-rate").(int), StreamRate: get("stream-rate").(int), AgentWorkers: get("agents").(int),
		SlowLinkLatency: get("link-latency").(time.Duration), SlowBackendLatency: get("backend-latency").(time.Duration),
		Drift: func(ctx context.Context, region string) (drill.DriftResult, error) {
			return driftOf(ctx, sys.Topology, region)
		},
	}
	if opts.ChatRate < 0 || opts.StreamRate < 0 || opts.AgentWorkers < 0 || opts.ChatRate+opts.StreamRate+opts.AgentWorkers == 0 {
		return usageErr("--chat-rate, --stream-rate and --agents must not be negative, and not all 0")
	}
	rep, err := drill.Run(ctx, sys, opts)
	if err != nil {
		return usageErr("%v", err)
	}
	dir := get("report").(string)
	if dir == "" {
		base := user.Path(user.DataDir)
		if demo {
			base = "." // the demo's data directory is removed
		}
		dir = filepath.Join(base, "drills", scenario+"-"+rep.Started.Format("20060102-150405"))
	}
	if err := rep.WriteFiles(dir); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	fmt.Fprintf(env.Stdout, "report: %s\n", filepath.Join(dir, "report.html"))
	if stopDemo != nil {
		stopDemo()
	}
	if rep.Failed() {
		return fmt.Errorf("drill %s %s: %s", scenario, rep.Result, strings.Join(rep.Reasons, "; "))
	}
	return nil
}

// driftOf runs the drift checks and returns region's verdict.
func driftOf(ctx context.Context, t *topology.Topology, region string) (drill.DriftResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := drift.Check(ctx, t, drift.Options{})
	if err != nil {
		return drill.DriftResult{Verdict: "UNKNOWN"}, err
	}
	rr := r.Region(region)
	if rr == nil {
		return drill.DriftResult{Verdict: "UNKNOWN", Output: "drift did not report region " + region}, nil
	}
	out := strings.Join(rr.Reasons, "\n")
	if out == "" {
		out = "no findings"
	}
	res := drill.DriftResult{Verdict: string(rr.Verdict), Output: out}
	for _, f := range r.Findings {
		res.VersionDrift = res.VersionDrift || f.Region == region && f.Field == "version"
	}
	return res, nil
}

// startDrillDemo writes a topology into a temporary directory (path's
// copy with every port 0, or the example topology), with link proxies on
// and a short failover cooldown, starts `understudy up` on it as a child
// process and waits until every component is ready. It returns the
// topology's path and a function that stops up and removes the directory.
func startDrillDemo(ctx context.Context, env *Env, path string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "understudy-drill-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	var src []byte
	if path == "" {
		src = topology.ExampleYAML(topology.ExampleOptions{Key: "sk-us-" + randHex(16), AdminToken: "adm-" + randHex(16),
			ReplicationSecret: "rep-" + randHex(16)})
		if err := os.MkdirAll(filepath.Join(dir, "agents"), 0o700); err != nil {
			cleanup()
			return "", nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "agents", "support-agent.yaml"), []byte(exampleAgent), 0o600); err != nil {
			cleanup()
			return "", nil, err
		}
	} else {
		if src, err = os.ReadFile(path); err != nil {
			cleanup()
			return "", nil, err
		}
		abs, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			cleanup()
			return "", nil, err
		}
		if src, err = demoCopy(src, abs); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if src, err = drillDemoSettings(src); err != nil {
		cleanup()
		return "", nil, err
	}
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, src, 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	cmd := exec.Command(exe, "up", "-f", topo)
	logf, err := os.Create(filepath.Join(dir, "up.log"))
	if err != nil {
		cleanup()
		return "", nil, err
	}
	cmd.Stderr = logf
	stdout, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		cleanup()
		return "", nil, fmt.Errorf("start up: %w", err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if strings.HasPrefix(line, "up: ") {
				close(ready)
			}
		}
		io.Copy(logf, stdout)
	}()
	go func() { cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		cleanup()
	}
	fmt.Fprintf(env.Stdout, "demo: starting a topology with `understudy up` in %s\n", dir)
	timer := time.NewTimer(3 * time.Minute)
	defer timer.Stop()
	select {
	case <-ready:
	case <-exited:
		data, _ := os.ReadFile(filepath.Join(dir, "up.log"))
		stop()
		return "", nil, fmt.Errorf("up exited before it was ready:\n%s", lastLines(data, 20))
	case <-timer.C:
		stop()
		return "", nil, errors.New("up was not ready within 3 minutes")
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
	return topo, stop, nil
}

func lastLines(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// drillDemoSettings turns link proxies on and shortens the failover
// cooldown so drills can follow one another.
func drillDemoSettings(src []byte) ([]byte, error) {
	return editYAML(src, func(root *yaml.Node) error {
		setKey(mapping(root, "links"), "enabled", "true")
		setKey(mapping(root, "controller"), "cooldown", "1s")
		setKey(root, "data_dir", "data")
		return nil
	})
}

// demoCopy rewrites a topology for a temporary directory: every listen
// address and sim URL gets port 0, derived URLs are dropped, and the
// agents directory stays where the original points.
func demoCopy(src []byte, dir string) ([]byte, error) {
	return editYAML(src, func(root *yaml.Node) error {
		zero := func(n *yaml.Node, key string, isURL bool) {
			v := getKey(n, key)
			if v == nil || v.Kind != yaml.ScalarNode {
				return
			}
			s := v.Value
			scheme := ""
			if isURL {
				if i := strings.Index(s, "://"); i >= 0 {
					scheme, s = s[:i+3], s[i+3:]
				}
			}
			if i := strings.LastIndex(s, ":"); i >= 0 {
				s = s[:i]
			}
			v.Value = scheme + s + ":0"
		}
		for _, sec := range []string{"edge", "controller"} {
			if n := getKey(root, sec); n != nil {
				zero(n, "listen", false)
				delKey(n, "url")
			}
		}
		if rs := getKey(root, "regions"); rs != nil {
			for _, r := range rs.Content {
				zero(r, "listen", false)
				delKey(r, "url")
				delKey(r, "store")
				if bs := getKey(r, "backends"); bs != nil && bs.Kind == yaml.MappingNode {
					for i := 1; i < len(bs.Content); i += 2 {
						for _, b := range bs.Content[i].Content {
							if k := getKey(b, "kind"); k != nil && k.Value == topology.KindSim {
								zero(b, "url", true)
							}
						}
					}
				}
			}
		}
		agents := mapping(root, "agents")
		d := "agents"
		if v := getKey(agents, "dir"); v != nil {
			d = v.Value
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		setKey(agents, "dir", d)
		return nil
	})
}

func editYAML(src []byte, edit func(root *yaml.Node) error) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	if err := edit(doc.Content[0]); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func getKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapping returns the mapping under key, adding it when missing.
func mapping(m *yaml.Node, key string) *yaml.Node {
	if n := getKey(m, key); n != nil && n.Kind == yaml.MappingNode {
		return n
	}
	delKey(m, key)
	n := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, n)
	return n
}

func setKey(m *yaml.Node, key, value string) {
	if n := getKey(m, key); n != nil {
		n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "", value, nil
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
}

func delKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
