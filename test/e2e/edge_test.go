package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const (
	e2eKey   = "sk-e2e-0123456789abcdef"
	e2eAdmin = "adm-e2e-0123456789abcdef"
	e2eModel = "gpt-4.1-mini"
)

// edgeTopology is the two-region topology of the edge e2e test: fast probes
// (detection 1.25s, recovery 1.5s) and a 1s attempt timeout.
const edgeTopology = `version: 1
name: e2e-edge
pattern: hot-warm
data_dir: %[1]s
keys:
  - name: e2e
    key: %[2]s
admin:
  token: %[3]s
deployments:
  - name: %[4]s
    version: "2025-04-14"
regions:
  - name: eastus2
    priority: 1
    listen: 127.0.0.1:%[5]d
    backends:
      %[4]s:
        - kind: openai
          url: %[7]s
  - name: centralus
    priority: 2
    listen: 127.0.0.1:%[6]d
    backends:
      %[4]s:
        - kind: openai
          url: %[8]s
replication:
  mode: async
  secret: rep-e2e-0123456789abcdef
targets:
  rpo: 5s
gateway:
  access_log: false
edge:
  listen: 127.0.0.1:%[9]d
  routing: priority
  attempt_timeout: 1s
  request_timeout: 10s
  eject_base: 1s
  eject_max: 4s
probes:
  path: /readyz
  interval: 500ms
  timeout: 250ms
  sample_size: 4
  successful_samples_required: 3
`

// outcome is one client request of the load.
type outcome struct {
	sent, done time.Duration // since the load started
	region     string
	err        error
}

// load sends non-streaming chat completions through the edge with the
// official client at rate per second for d (open loop: a slow answer does
// not delay the next request), and calls at(elapsed) hooks on schedule.
func load(t *testing.T, edgeURL string, rate int, d time.Duration, hooks map[time.Duration]func()) []outcome {
	t.Helper()
	client := openai.NewClient(
		option.WithBaseURL(edgeURL+"/v1/"),
		option.WithAPIKey(e2eKey),
		option.WithMaxRetries(0), // every failure the edge lets through counts
		option.WithRequestTimeout(15*time.Second),
		option.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}),
	)
	params := openai.ChatCompletionNewParams{
		Model:     e2eModel,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		MaxTokens: openai.Int(8),
	}
	var (
		mu  sync.Mutex
		out []outcome
		wg  sync.WaitGroup
	)
	begin := time.Now()
	hookWG := sync.WaitGroup{}
	for at, fn := range hooks {
		hookWG.Go(func() {
			<-time.After(at)
			fn()
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for time.Since(begin) < d {
		<-tick.C
		wg.Go(func() {
			sent := time.Since(begin)
			var resp *http.Response
			_, err := client.Chat.Completions.New(t.Context(), params, option.WithResponseInto(&resp))
			o := outcome{sent: sent, done: time.Since(begin), err: err}
			if resp != nil {
				o.region = resp.Header.Get("X-Understudy-Region")
			}
			mu.Lock()
			out = append(out, o)
			mu.Unlock()
		})
	}
	wg.Wait()
	hookWG.Wait()
	slices.SortFunc(out, func(a, b outcome) int { return int(a.sent - b.sent) })
	return out
}

func failures(out []outcome) []outcome {
	var f []outcome
	for _, o := range out {
		if o.err != nil {
			f = append(f, o)
		}
	}
	return f
}

// firstFrom returns the first request answered by region that was sent
// at or after from.
func firstFrom(out []outcome, region string, from time.Duration) (outcome, bool) {
	var best outcome
	found := false
	for _, o := range out {
		if o.sent >= from && o.region == region && (!found || o.done < best.done) {
			best, found = o, true
		}
	}
	return best, found
}

// TestEdgeRegionFailover runs two modelsims, two gateways and the edge as
// processes, drives load through the edge with the official OpenAI client,
// and kills, restarts and then freezes the primary gateway.
func TestEdgeRegionFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and runs load for about 35s")
	}
	dir := t.TempDir()
	simA := start(t, "modelsim-eastus2", "modelsim", "--listen", "127.0.0.1:0", "--model", e2eModel, "--version", "2025-04-14")
	simB := start(t, "modelsim-centralus", "modelsim", "--listen", "127.0.0.1:0", "--model", e2eModel, "--version", "2025-04-14")
	gwA, gwB, edgePort := freePort(t), freePort(t), freePort(t)
	topoPath := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf(edgeTopology, filepath.Join(dir, "data"), e2eKey, e2eAdmin, e2eModel, gwA, gwB,
		simA.ready["url"], simB.ready["url"], edgePort)
	if err := os.WriteFile(topoPath, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	primary := start(t, "gateway-eastus2", "gateway", "-f", topoPath, "--region", "eastus2")
	start(t, "gateway-centralus", "gateway", "-f", topoPath, "--region", "centralus")
	edge := start(t, "edge", "edge", "-f", topoPath)
	edgeURL := edge.ready["url"]
	if edgeURL != fmt.Sprintf("http://127.0.0.1:%d", edgePort) || edge.ready["admin"] == "" {
		t.Fatalf("edge ready line %v", edge.ready)
	}

	const rate = 60
	const recovery = 1500 * time.Millisecond // 3 passing probes x 500ms

	t.Run("SIGKILL primary, restart", func(t *testing.T) {
		const killAt, restartAt, dur = 5 * time.Second, 9 * time.Second, 18 * time.Second
		var restartedAt time.Duration
		var hookErr [2]error
		begin := time.Now()
		out := load(t, edgeURL, rate, dur, map[time.Duration]func(){
			killAt: func() { hookErr[0] = primary.signal(syscall.SIGKILL) },
			restartAt: func() {
				hookErr[1] = primary.restart()
				restartedAt = time.Since(begin)
			},
		})
		for _, err := range hookErr {
			if err != nil {
				t.Fatal(err)
			}
		}
		if len(out) < rate*int(dur/time.Second)*9/10 {
			t.Errorf("only %d requests in %s", len(out), dur)
		}
		if f := failures(out); len(f) > 0 {
			t.Errorf("%d of %d client requests failed; first: sent at %s: %v", len(f), len(out), f[0].sent, f[0].err)
		}
		before, _ := firstFrom(out, "centralus", 0)
		if before.sent < killAt && before.region == "centralus" {
			t.Errorf("standby answered before the kill, at %s", before.sent)
		}
		first, ok := firstFrom(out, "centralus", killAt)
		if !ok {
			t.Fatal("the standby never answered after the primary was killed")
		}
		var slowest time.Duration
		for _, o := range out {
			if o.sent >= killAt-time.Second && o.sent < killAt+time.Second {
				slowest = max(slowest, o.done-o.sent)
			}
		}
		t.Logf("SIGKILL at %s: first answer from the standby %s after the kill (request sent %s after); slowest request around the kill %s; %d requests, %d failed",
			killAt, first.done-killAt, first.sent-killAt, slowest, len(out), len(failures(out)))

		back, ok := firstFrom(out, "eastus2", restartedAt)
		if !ok {
			t.Fatalf("traffic never returned to the restarted primary (ready at %s)", restartedAt)
		}
		t.Logf("primary ready again at %s: traffic back on it %s later (probe recovery window %s)", restartedAt, back.done-restartedAt, recovery)
		for _, o := range out {
			if o.sent > back.done+time.Second && o.region != "eastus2" {
				t.Errorf("request sent at %s answered by %q after traffic returned to the primary", o.sent, o.region)
				break
			}
		}
	})

	t.Run("SIGSTOP primary", func(t *testing.T) {
		// Let the primary's probe window and ejection settle after the restart.
		waitServing(t, edge.ready["admin"], "eastus2")
		const stopAt, contAt, dur = 3 * time.Second, 9 * time.Second, 12 * time.Second
		var hookErr [2]error
		out := load(t, edgeURL, rate, dur, map[time.Duration]func(){
			stopAt: func() { hookErr[0] = primary.signal(syscall.SIGSTOP) },
			contAt: func() { hookErr[1] = primary.signal(syscall.SIGCONT) },
		})
		for _, err := range hookErr {
			if err != nil {
				t.Fatal(err)
			}
		}
		if f := failures(out); len(f) > 0 {
			t.Errorf("%d of %d client requests failed; first: sent at %s: %v", len(f), len(out), f[0].sent, f[0].err)
		}
		first, ok := firstFrom(out, "centralus", stopAt)
		if !ok {
			t.Fatal("the standby never answered after the primary froze")
		}
		var hung []time.Duration
		for _, o := range out {
			if o.sent >= stopAt && o.sent < stopAt+2*time.Second && o.region == "centralus" && o.done-o.sent > 200*time.Millisecond {
				hung = append(hung, o.done-o.sent)
			}
		}
		slices.Sort(hung)
		var longest time.Duration
		if len(hung) > 0 {
			longest = hung[len(hung)-1]
		}
		t.Logf("SIGSTOP at %s: first answer from the standby %s after the freeze; %d requests hung on the frozen primary before moving, longest %s (attempt timeout 1s, probe detection window 1.25s); %d requests, %d failed",
			stopAt, first.done-stopAt, len(hung), longest, len(out), len(failures(out)))
		if longest > 3*time.Second {
			t.Errorf("a request hung %s: more than the attempt timeout plus slack", longest)
		}
		if _, ok := firstFrom(out, "eastus2", contAt); !ok {
			t.Logf("traffic had not returned to the primary %s after SIGCONT", dur-contAt)
		}
	})

	// The edge's admin view agrees: the primary was ejected by real traffic.
	var view struct {
		Origins []struct {
			Name      string `json:"name"`
			Ejections int    `json:"ejections"`
		} `json:"origins"`
	}
	adminGet(t, edge.ready["admin"]+"/origins", &view)
	if len(view.Origins) != 2 || view.Origins[0].Name != "eastus2" || view.Origins[0].Ejections < 2 {
		t.Errorf("admin origins %+v: want eastus2 ejected at least twice", view.Origins)
	}
}

func adminGet(t *testing.T, url string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// waitServing waits until the edge routes to origin, following the event
// stream rather than polling.
func waitServing(t *testing.T, admin, origin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var view struct {
			Origins []struct {
				Name    string `json:"name"`
				Serving bool   `json:"serving"`
				Passes  int    `json:"passes"`
				Samples int    `json:"samples"`
			} `json:"origins"`
		}
		adminGet(t, admin+"/origins", &view)
		for _, o := range view.Origins {
			if o.Name == origin && o.Serving && o.Passes == o.Samples {
				return
			}
		}
		// Wait for the next event (a probe round changes something) or 500ms.
		waitEvent(ctx, admin)
	}
	t.Fatalf("%s not serving with a full window within 15s", origin)
}

// waitEvent returns at the next event on the admin stream after the
// backlog, or when ctx ends, or after a probe interval.
func waitEvent(ctx context.Context, admin string) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", admin+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	req.Header.Set("Last-Event-ID", "18446744073709551615") // no backlog
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	resp.Body.Read(buf)
}
