// Command turns measures agent turns per second through one region: it
// starts a topology with `understudy up` per configuration (sqlite or
// postgres store, alone or with a standby region replicating by journal
// in sync or async mode), drives closed-loop agent turns at the primary
// region's URL with the official OpenAI SDK (Responses API with an
// agent_reference, in a conversation) for a fixed duration, and prints
// turns/s and the p50/p99 turn latency per configuration. Model servers
// are modelsims with zero latency, so the numbers are the gateway's, the
// store's and replication's cost. PostgreSQL servers are started from the
// machine's binaries by internal/testutil/pgtest, one per region.
//
//	go run ./bench/turns -bin /path/to/understudy [-duration 10s] [-workers 8] [-configs all]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/testutil/pgtest"
)

const (
	key   = "sk-bench-0123456789abcdef"
	admin = "adm-bench-0123456789abcdef"
)

// config is one measured topology: the primary eastus2 alone, or with
// the standby centralus.
type config struct {
	name      string
	driver    string // sqlite or postgres
	standby   bool   // centralus runs and replicates; else eastus2 is the only region
	mode      string // sync or async
	replicas  int    // gateway replicas per region
	transport string // journal, or engine (postgres streaming replication: centralus is eastus2's server's hot standby)
}

var configs = []config{
	{"sqlite-alone", "sqlite", false, "async", 1, "journal"},
	{"postgres-alone", "postgres", false, "async", 1, "journal"},
	{"sqlite+standby-sync", "sqlite", true, "sync", 1, "journal"},
	{"sqlite+standby-async", "sqlite", true, "async", 1, "journal"},
	{"postgres+standby-sync", "postgres", true, "sync", 1, "journal"},
	{"postgres+standby-async", "postgres", true, "async", 1, "journal"},
	{"postgres-2-replicas+standby-sync", "postgres", true, "sync", 2, "journal"},
	{"postgres-engine+standby-sync", "postgres", true, "sync", 1, "engine"},
	{"postgres-engine+standby-async", "postgres", true, "async", 1, "engine"},
}

func main() {
	bin := flag.String("bin", "", "the understudy binary (required)")
	duration := flag.Duration("duration", 10*time.Second, "measured time per configuration (after a 2s warm-up)")
	workers := flag.Int("workers", 8, "closed-loop clients, each in its own conversation")
	only := flag.String("configs", "all", "comma-separated configuration names, or all")
	maxTurns := flag.Int("max-turns", 100000, "turns per worker at most")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "turns: -bin is required")
		os.Exit(2)
	}
	fmt.Printf("# %d workers, closed loop, %s per configuration after a 2s warm-up; modelsim with zero latency\n", *workers, *duration)
	fmt.Printf("%-32s %8s %8s %9s %9s %s\n", "config", "turns", "turns/s", "p50_ms", "p99_ms", "errors")
	for _, c := range configs {
		if *only != "all" && !slices.Contains(strings.Split(*only, ","), c.name) {
			continue
		}
		r, err := run(c, *bin, *duration, *workers, *maxTurns)
		if err != nil {
			fmt.Fprintf(os.Stderr, "turns: %s: %v\n", c.name, err)
			os.Exit(1)
		}
		fmt.Printf("%-32s %8d %8.1f %9.2f %9.2f %d\n", c.name, r.turns, float64(r.turns)/duration.Seconds(),
			ms(pct(r.lat, 0.50)), ms(pct(r.lat, 0.99)), r.errors)
	}
}

type result struct {
	turns, errors int
	lat           []time.Duration
}

func run(c config, bin string, duration time.Duration, workers, maxTurns int) (result, error) {
	dir, err := os.MkdirTemp("", "understudy-turns-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	regions := []string{"eastus2", "centralus"}
	if !c.standby {
		regions = regions[:1]
	}
	var dsns []string
	switch {
	case c.transport == "engine":
		pg, err := pgtest.New(ctx, pgtest.Options{})
		if err != nil {
			return result{}, err
		}
		defer pg.Close()
		dsn, err := pg.CreateDatabase(ctx, "understudy")
		if err != nil {
			return result{}, err
		}
		// The standby copies the schema: migrate before the base backup.
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			return result{}, err
		}
		st.Close()
		sb, err := pg.NewStandby(ctx, "centralus", pgtest.Options{})
		if err != nil {
			return result{}, err
		}
		defer sb.Close()
		dsns = append(dsns, dsn, sb.DSN("understudy"))
	case c.driver == "postgres":
		for range regions {
			pg, err := pgtest.New(ctx, pgtest.Options{})
			if err != nil {
				return result{}, err
			}
			defer pg.Close()
			dsn, err := pg.CreateDatabase(ctx, "understudy")
			if err != nil {
				return result{}, err
			}
			dsns = append(dsns, dsn)
		}
	}
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	primaryURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	var b strings.Builder
	rpo := "0s"
	if c.mode == "async" {
		rpo = "5s"
	}
	fmt.Fprintf(&b, `version: 1
name: bench-turns
targets: {rto: 10s, rpo: %s}
keys: [{name: bench, key: %s}]
admin: {token: %s}
deployments: [{name: gpt-4.1-mini, version: "2025-04-14"}]
replication: {mode: %s, transport: %s, secret: rep-bench-0123456789abcdef}
gateway: {access_log: false}
edge: {listen: 127.0.0.1:0}
controller: {listen: 127.0.0.1:0}
regions:
`, rpo, key, admin, c.mode, c.transport)
	for i, r := range regions {
		listen := "127.0.0.1:0"
		if i == 0 {
			listen = fmt.Sprintf("127.0.0.1:%d", port)
		}
		fmt.Fprintf(&b, "  - name: %s\n    listen: %s\n    replicas: %d\n    backends: {gpt-4.1-mini: [{kind: sim, url: \"http://127.0.0.1:0\"}]}\n", r, listen, c.replicas)
		if c.driver == "postgres" {
			fmt.Fprintf(&b, "    store: {driver: postgres, dsn: %q}\n", dsns[i])
		}
	}
	os.MkdirAll(filepath.Join(dir, "agents"), 0o755)
	os.WriteFile(filepath.Join(dir, "agents", "support.yaml"), []byte("name: support\nmodel: gpt-4.1-mini\ninstructions: Be brief.\nmetadata: {version: \"1\"}\n"), 0o644)
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte(b.String()), 0o600); err != nil {
		return result{}, err
	}

	up := exec.Command(bin, "up", "-f", topo)
	log, err := os.Create(filepath.Join(dir, "up.log"))
	if err != nil {
		return result{}, err
	}
	defer log.Close()
	up.Stderr = log
	out, _ := up.StdoutPipe()
	up.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := up.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		up.Process.Signal(syscall.SIGTERM)
		up.Wait()
	}()
	// up prints one ready line per component; the controller is the last.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if strings.HasPrefix(sc.Text(), "ready component=controller") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return result{}, fmt.Errorf("up not ready: see %s", filepath.Join(dir, "up.log"))
	}

	client := openai.NewClient(option.WithBaseURL(primaryURL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second))
	turn := func(ctx context.Context, conv string, n int) error {
		_, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(fmt.Sprintf("turn %d", n))},
			Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv)},
		}, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": "support"}))
		return err
	}
	// The primary serves once a turn succeeds (lease, agents applied).
	var conv *conversations.Conversation
	var lastErr error
	for {
		if conv == nil {
			conv, lastErr = client.Conversations.New(ctx, conversations.ConversationNewParams{})
		}
		if conv != nil {
			if lastErr = turn(ctx, conv.ID, 0); lastErr == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			data, _ := os.ReadFile(filepath.Join(dir, "up.log"))
			return result{}, fmt.Errorf("no turn succeeded within 60s: %v\n%s", lastErr, tail(string(data), 30))
		case <-time.After(200 * time.Millisecond):
		}
	}

	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	start := time.Now()
	warm, end := start.Add(2*time.Second), start.Add(2*time.Second+duration)
	for range workers {
		wg.Go(func() {
			cv, err := client.Conversations.New(context.Background(), conversations.ConversationNewParams{})
			if err != nil {
				mu.Lock()
				res.errors++
				mu.Unlock()
				return
			}
			for n := range maxTurns {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := turn(context.Background(), cv.ID, n)
				d := time.Since(t0)
				if t0.Before(warm) || time.Now().After(end) {
					continue // outside the measured window
				}
				mu.Lock()
				if err != nil {
					res.errors++
				} else {
					res.turns++
					res.lat = append(res.lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res, nil
}

func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
