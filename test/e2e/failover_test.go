package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// failoverTopology: two regions on ports `up` picks, sync replication, an
// agent, a fast controller (detection within 1s, lease 2s).
const failoverTopology = `version: 1
name: e2e-failover
pattern: hot-warm
targets: {rto: 10s, rpo: 0s}
keys: [{name: e2e, key: %[1]s}]
admin: {token: %[2]s}
deployments: [{name: %[3]s, version: "2025-04-14"}]
regions:
  - name: eastus2
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0"}]}
  - name: centralus
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0"}]}
replication: {mode: sync, secret: rep-e2e-0123456789abcdef, sync_timeout: 2s}
gateway: {access_log: false}
edge: {listen: 127.0.0.1:0, attempt_timeout: 1s, eject_base: 500ms, eject_max: 2s}
probes: {interval: 500ms, timeout: 250ms, sample_size: 3, successful_samples_required: 2}
controller: {listen: 127.0.0.1:0, lease_ttl: 2s, failures: 3, window: 2s, probe_interval: 250ms, cooldown: 1s}
`

const supportAgent = `name: support
model: gpt-4.1-mini
instructions: Be brief.
metadata: {version: "1"}
`

// upState is the part of up.json the tests read.
type upState struct {
	Topology string `json:"topology"`
	Pid      int    `json:"pid"`
	// Isolation is how up partitions a region (netns or linkproxy), and
	// Namespaces its regions' namespaces (netns).
	Isolation  string `json:"isolation"`
	Namespaces []struct {
		Region string `json:"region"`
		Netns  string `json:"netns"`
	} `json:"namespaces"`
	Components []struct {
		Name string   `json:"name"`
		Pid  int      `json:"pid"`
		URL  string   `json:"url"`
		Args []string `json:"args"`
	} `json:"components"`
}

func (s upState) component(name string) (pid int, url string, args []string) {
	for _, c := range s.Components {
		if c.Name == name {
			return c.Pid, c.URL, c.Args
		}
	}
	return 0, "", nil
}

// startUp writes the topology and an agent into a fresh directory, runs
// `understudy up` and waits until up.json lists want components.
func startUp(t *testing.T, topo string, want int) (dir string, st upState) {
	t.Helper()
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "agents"), 0o755)
	os.WriteFile(filepath.Join(dir, "agents", "support.yaml"), []byte(supportAgent), 0o644)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "up", "up", "-f", path)
	// up gets SIGTERM first, so it stops its components and deletes the
	// network namespaces it made (start's own cleanup then has nothing
	// left to kill).
	t.Cleanup(func() {
		if t.Failed() {
			// Each gateway writes its goroutines to its log and exits: a
			// hung request shows where it waits.
			for _, c := range st.Components {
				if strings.HasPrefix(c.Name, "gateway/") && c.Pid > 0 {
					syscall.Kill(c.Pid, syscall.SIGQUIT)
				}
			}
			<-time.After(time.Second)
		}
		p.terminate(30 * time.Second)
		if t.Failed() { // the components' logs are gone with the directory: keep them
			keep := filepath.Join(os.TempDir(), "understudy-e2e-failed", strings.ReplaceAll(t.Name(), "/", "_"))
			os.MkdirAll(keep, 0o755)
			logs, _ := filepath.Glob(filepath.Join(dir, "data", "logs", "*.log"))
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				os.WriteFile(filepath.Join(keep, filepath.Base(l)), data, 0o644)
				lines := strings.Split(strings.TrimSpace(string(data)), "\n")
				t.Logf("--- %s (last 60 lines; whole log and goroutine dump kept in %s) ---\n%s",
					filepath.Base(l), keep, strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		}
	})
	waitFor(t, 60*time.Second, "up to start every component", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "data", "up.json"))
		if err != nil || json.Unmarshal(data, &st) != nil {
			return false
		}
		return len(st.Components) == want
	})
	return dir, st
}

func readUpJSON(t *testing.T, st upState) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(st.Topology), "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitFor polls cond every 50ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	for ; !cond(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
	}
}

// ctlStatus is the part of the controller's status the tests read.
type ctlStatus struct {
	Primary string `json:"primary"`
	Epoch   int64  `json:"epoch"`
	Regions map[string]struct {
		Up        bool `json:"up"`
		Readiness struct {
			Role        string `json:"role"`
			Epoch       int64  `json:"epoch"`
			Writable    bool   `json:"writable"`
			Replication map[string]struct {
				Events int64 `json:"events"`
			} `json:"replication"`
			Engine map[string]any `json:"engine"`
		} `json:"readiness"`
	} `json:"regions"`
	Active *json.RawMessage `json:"active"`
	Last   *struct {
		ID      string         `json:"id"`
		Kind    string         `json:"kind"`
		To      string         `json:"to"`
		Status  string         `json:"status"`
		Error   string         `json:"error"`
		Data    map[string]any `json:"data"`
		FaultAt time.Time      `json:"fault_at"`
		Steps   []struct {
			Name     string    `json:"name"`
			Status   string    `json:"status"`
			Attempts int       `json:"attempts"`
			Started  time.Time `json:"started"`
			Ended    time.Time `json:"ended"`
		} `json:"steps"`
	} `json:"last"`
}

func controllerStatus(t *testing.T, url string) (ctlStatus, error) {
	var st ctlStatus
	req, _ := http.NewRequest("GET", url+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// ack is one agent turn the client saw acknowledged.
type ack struct {
	conv, resp string
	items      []string // the turn's output item ids
}

// agentLoad runs workers that each hold a conversation and take turns
// until stop closes. A failed turn is retried with the same
// Idempotency-Key, as a careful client does, for up to 30 s.
func agentLoad(t *testing.T, edge string, workers int, stop <-chan struct{}) (acks []ack, retries int64) {
	client := openai.NewClient(option.WithBaseURL(edge+"/v1/"), option.WithAPIKey(e2eKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(10*time.Second))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var nretry atomic.Int64
	for w := range workers {
		wg.Go(func() {
			// Creating the conversation is retried too: with replicas, the
			// one that answers may not hold the write lease yet.
			var conv *conversations.Conversation
			for deadline := time.Now().Add(30 * time.Second); ; {
				var err error
				if conv, err = client.Conversations.New(context.Background(), conversations.ConversationNewParams{}); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("worker %d: create conversation: %v", w, err)
					return
				}
				nretry.Add(1)
				<-time.After(100 * time.Millisecond)
			}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("turn-%d-%d-%d", w, n, time.Now().UnixNano())
				deadline := time.Now().Add(30 * time.Second)
				for {
					resp, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
						Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(fmt.Sprintf("turn %d of worker %d", n, w))},
						Conversation: responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv.ID)},
					}, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": "support"}),
						option.WithHeader("Idempotency-Key", key))
					if err == nil {
						a := ack{conv: conv.ID, resp: resp.ID}
						for _, o := range resp.Output {
							a.items = append(a.items, o.ID)
						}
						mu.Lock()
						acks = append(acks, a)
						mu.Unlock()
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("worker %d: turn %d never acknowledged: %v", w, n, err)
						return
					}
					nretry.Add(1)
					<-time.After(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return acks, nretry.Load()
}

// lost returns the acknowledged turns whose output items base does not hold.
func lost(t *testing.T, base string, acks []ack) []ack {
	t.Helper()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(e2eKey), option.WithMaxRetries(2))
	have := map[string]map[string]bool{}
	var missing []ack
	for _, a := range acks {
		if have[a.conv] == nil {
			have[a.conv] = map[string]bool{}
			iter := client.Conversations.Items.ListAutoPaging(context.Background(), a.conv, conversations.ItemListParams{Limit: openai.Int(100)})
			for iter.Next() {
				have[a.conv][iter.Current().ID] = true
			}
			if err := iter.Err(); err != nil {
				t.Fatalf("list items of %s at %s: %v", a.conv, base, err)
			}
		}
		for _, id := range a.items {
			if !have[a.conv][id] {
				missing = append(missing, a)
				break
			}
		}
	}
	return missing
}

// TestControllerFailoverAndFailback: the whole topology under `up`, mixed
// load through the edge, the primary region (gateway and model server)
// killed with SIGKILL, automatic failover, zero acknowledged turns lost,
// RTO within target; then the region comes back, catches up, and a
// failback restores roles and routing with zero loss.
func TestControllerFailoverAndFailback(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole topology with load for about 40s")
	}
	_, st := startUp(t, fmt.Sprintf(failoverTopology, e2eKey, e2eAdmin, e2eModel), 6)
	_, edge, _ := st.component("edge")
	_, ctl, _ := st.component("controller")
	waitFor(t, 20*time.Second, "a writable primary and its standby", func() bool {
		s, err := controllerStatus(t, ctl)
		east := s.Regions["eastus2"].Readiness
		return err == nil && east.Role == "primary" && east.Writable && s.Regions["centralus"].Readiness.Role == "standby"
	})

	stop := make(chan struct{})
	var chatOut []outcome
	var chatDone sync.WaitGroup
	chatDone.Go(func() { chatOut = load(t, edge, 20, 14*time.Second, nil) })
	var acks []ack
	var retries int64
	var agentDone sync.WaitGroup
	agentDone.Go(func() { acks, retries = agentLoad(t, edge, 4, stop) })

	<-time.After(4 * time.Second)
	killedAt := time.Now()
	for _, name := range []string{"gateway/eastus2", "modelsim/eastus2/gpt-4.1-mini-1"} {
		pid, _, _ := st.component(name)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
	}
	var s ctlStatus
	waitFor(t, 30*time.Second, "an automatic failover to complete", func() bool {
		var err error
		s, err = controllerStatus(t, ctl)
		return err == nil && s.Last != nil && s.Last.Kind == "failover" && (s.Last.Status == "completed" || s.Last.Status == "failed")
	})
	if s.Last.Status != "completed" || s.Last.To != "centralus" || s.Primary != "centralus" || s.Epoch != 2 {
		t.Fatalf("failover: %+v", s.Last)
	}
	t.Logf("failover completed %s after the kill; controller RTO %vms (from the first failed probe), target %vms",
		time.Since(killedAt).Round(time.Millisecond), s.Last.Data["rto_ms"], s.Last.Data["rto_target_ms"])
	if s.Last.Data["rto_met"] != true {
		t.Errorf("RTO target missed: %v", s.Last.Data)
	}
	<-time.After(3 * time.Second) // turns acknowledged by the new primary too
	close(stop)
	agentDone.Wait()
	chatDone.Wait()

	if f := failures(chatOut); len(f) > 0 {
		t.Errorf("%d of %d chat completions failed through the edge; first: %v", len(f), len(chatOut), f[0].err)
	}
	if len(acks) < 20 {
		t.Fatalf("only %d agent turns acknowledged", len(acks))
	}
	if m := lost(t, edge, acks); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged turns lost after failover (sync replication); first %+v", len(m), len(acks), m[0])
	}
	t.Logf("%d agent turns acknowledged, 0 lost; %d client retries during the failover; %d chat completions, 0 failed",
		len(acks), retries, len(chatOut))

	// The old region comes back as a standby and catches up.
	for _, name := range []string{"modelsim/eastus2/gpt-4.1-mini-1", "gateway/eastus2"} {
		_, _, args := st.component(name)
		start(t, name, args...)
	}
	waitFor(t, 30*time.Second, "eastus2 to rejoin as a caught-up standby", func() bool {
		s, err := controllerStatus(t, ctl)
		if err != nil {
			return false
		}
		east, central := s.Regions["eastus2"], s.Regions["centralus"]
		lag, ok := central.Readiness.Replication["eastus2"]
		return east.Up && east.Readiness.Role == "standby" && east.Readiness.Epoch == 2 && ok && lag.Events == 0
	})
	out, err := exec.Command(binary(t), "failback", "-f", st.Topology).CombinedOutput()
	if err != nil {
		t.Fatalf("failback: %v\n%s", err, out)
	}
	t.Logf("failback:\n%s", out)
	s, err = controllerStatus(t, ctl)
	if err != nil || s.Primary != "eastus2" || s.Epoch != 3 || s.Last.Data["rpo_events"] != float64(0) {
		t.Fatalf("after failback: %+v %v", s, err)
	}
	if m := lost(t, edge, acks); len(m) > 0 {
		t.Fatalf("%d acknowledged turns lost after failback", len(m))
	}
	// Routing returns to eastus2 once the edge's probes see it serving (the
	// runbook's validation already saw it answer through the edge).
	var last string
	waitFor(t, 10*time.Second, "the edge to route to eastus2 again", func() bool {
		req, _ := http.NewRequest("POST", edge+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+e2eKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = fmt.Sprintf("%s from %q (edge: %s)", resp.Status, resp.Header.Get("X-Understudy-Region"), resp.Header.Get("X-Understudy-Edge"))
		if resp.StatusCode != 200 {
			t.Fatalf("request after failback: %s", last)
		}
		return resp.Header.Get("X-Understudy-Region") == "eastus2"
	})
	t.Logf("after failback: %s", last)
	if !strings.Contains(string(out), "completed") {
		t.Errorf("failback output lacks the report")
	}
}
