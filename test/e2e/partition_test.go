package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Partition tests: the two regions and the witness (controller and edge)
// each in their own network namespace, joined by three veth pairs.
//
//	      A (eastus2, primary)              B (centralus, standby)
//	  10.77.0.1 gateway :8000  ── link 1 ──  10.77.0.2 gateway :8000
//	  127.0.0.1:9001 modelsim   10.77.1.0/30  127.0.0.1:9002 modelsim
//	                 \                         /
//	        link 2    \                       /   link 3
//	     10.77.2.0/30  \                     /  10.77.3.0/30
//	                 W (witness) 10.77.0.3
//	                 controller :8070, edge :8080
//
// The test's own clients open their sockets inside a namespace (see
// netns_test.go), so "a client of A" reaches A's gateway whatever happens
// to A's links.

// netTopology is the topology of the partition tests: %[1]s data dir,
// %[2]s key, %[3]s admin token, %[4]s replication mode, %[5]v
// degrade_to_async, %[6]s targets.rpo, %[7]s lease TTL.
const netTopology = `version: 1
name: e2e-partition
pattern: hot-warm
data_dir: %[1]s
targets: {rto: 10s, rpo: %[6]s}
keys: [{name: e2e, key: %[2]s}]
admin: {token: %[3]s, allow_remote: true}
deployments: [{name: gpt-4.1-mini, version: "2025-04-14"}]
regions:
  - name: eastus2
    listen: 10.77.0.1:8000
    backends: {gpt-4.1-mini: [{kind: sim, url: "http://127.0.0.1:9001"}]}
  - name: centralus
    listen: 10.77.0.2:8000
    backends: {gpt-4.1-mini: [{kind: sim, url: "http://127.0.0.1:9002"}]}
replication: {mode: %[4]s, secret: rep-e2e-0123456789abcdef, sync_timeout: 1s, degrade_to_async: %[5]v}
gateway: {access_log: false}
edge: {listen: 10.77.0.3:8080, attempt_timeout: 1s, eject_base: 500ms, eject_max: 2s}
probes: {interval: 500ms, timeout: 250ms, sample_size: 3, successful_samples_required: 2}
controller: {listen: 10.77.0.3:8070, lease_ttl: %[7]s, failures: 3, window: 2s, probe_interval: 250ms, cooldown: 1s}
`

// netRegions is a running two-region topology in namespaces.
type netRegions struct {
	lab     *netLab
	a, b, w *nsNode
	// ca, cb, cw are HTTP clients inside A, B and W.
	ca, cb, cw *http.Client
	east       string // eastus2's gateway, as its clients reach it
	central    string
	controller string
}

// startNetRegions builds the three namespaces and their links, and starts
// every component in its namespace.
func startNetRegions(t *testing.T, mode string, degrade bool, leaseTTL time.Duration) *netRegions {
	t.Helper()
	lab := newNetLab(t, "A", "B", "W")
	lab.link("A", "B")
	lab.link("A", "W")
	lab.link("B", "W")
	r := &netRegions{lab: lab, a: lab.node("A"), b: lab.node("B"), w: lab.node("W")}
	r.ca, r.cb, r.cw = r.a.client(10*time.Second), r.b.client(10*time.Second), r.w.client(10*time.Second)
	r.east, r.central, r.controller = "http://"+r.a.ip+":8000", "http://"+r.b.ip+":8000", "http://"+r.w.ip+":8070"

	dir := t.TempDir()
	rpo := "0s"
	if mode == "async" {
		rpo = "5s"
	}
	path := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf(netTopology, filepath.Join(dir, "data"), e2eKey, e2eAdmin, mode, degrade, rpo, leaseTTL)
	if err := os.WriteFile(path, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := func(port string) []string {
		return []string{"modelsim", "--listen", "127.0.0.1:" + port, "--model", e2eModel, "--version", "2025-04-14", "--admin-token", e2eAdmin}
	}
	startAllIn(t,
		procSpec{r.a, "modelsim/eastus2", sim("9001")},
		procSpec{r.b, "modelsim/centralus", sim("9002")},
		procSpec{r.a, "gateway/eastus2", []string{"gateway", "-f", path, "--region", "eastus2"}},
		procSpec{r.b, "gateway/centralus", []string{"gateway", "-f", path, "--region", "centralus"}},
	)
	startAllIn(t,
		procSpec{r.w, "edge", []string{"edge", "-f", path}},
		procSpec{r.w, "controller", []string{"controller", "-f", path}},
	)
	waitFor(t, 20*time.Second, "a primary holding its lease and a vouching standby", func() bool {
		ea, err1 := r.state(r.ca, r.east)
		ce, err2 := r.state(r.cb, r.central)
		return err1 == nil && err2 == nil && ea.Role == "primary" && ea.Lease != nil && ea.Lease.Valid &&
			ce.Role == "standby" && ce.Vouching
	})
	return r
}

// adminState is the part of a region's GET /admin/state the tests read.
type adminState struct {
	Role     string `json:"role"`
	Epoch    int64  `json:"epoch"`
	Position struct {
		Seq int64 `json:"seq"`
	} `json:"position"`
	Lease *struct {
		Valid       bool   `json:"valid"`
		RemainingMs int64  `json:"remaining_ms"`
		From        string `json:"from"`
		LastError   string `json:"last_error"`
	} `json:"lease"`
	Replication map[string]struct {
		Connected    bool    `json:"connected"`
		PeerEpoch    int64   `json:"peer_epoch"`
		LocalSeq     int64   `json:"local_seq"`
		AckedSeq     int64   `json:"acked_seq"`
		LagEvents    int64   `json:"lag_events"`
		LagSeconds   float64 `json:"lag_seconds"`
		Degraded     bool    `json:"degraded"`
		DegradedAcks int64   `json:"degraded_acks"`
		Batches      int64   `json:"batches"`
		Events       int64   `json:"events"`
	} `json:"replication"`
	SyncPeers   []string `json:"sync_peers"`
	Vouching    bool     `json:"vouching"`
	Quarantined int      `json:"quarantined"`
}

func (r *netRegions) state(c *http.Client, base string) (adminState, error) {
	var st adminState
	err := getJSONVia(c, base+"/admin/state", e2eAdmin, &st)
	return st, err
}

// getJSONVia GETs url with a bearer token and decodes a 200 answer.
func getJSONVia(c *http.Client, url, token string, out any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

// createConversations creates n conversations at base.
func createConversations(t *testing.T, c *http.Client, base string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		req, _ := http.NewRequest("POST", base+"/v1/conversations", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+e2eKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var conv struct {
			ID string `json:"id"`
		}
		json.NewDecoder(resp.Body).Decode(&conv)
		resp.Body.Close()
		if resp.StatusCode != 200 || conv.ID == "" {
			t.Fatalf("create conversation: %s", resp.Status)
		}
		ids = append(ids, conv.ID)
	}
	return ids
}

// itemWrite is one attempt to append an item: acknowledged (status 200,
// id set) or refused.
type itemWrite struct {
	writer     string
	conv, id   string
	sent, done time.Time
	status     int
	code       string
	err        error
}

func (w itemWrite) acked() bool { return w.status == http.StatusOK && w.id != "" }

// writeLog collects the item writes of several writers.
type writeLog struct {
	mu     sync.Mutex
	writes []itemWrite
}

func (l *writeLog) add(w itemWrite) {
	l.mu.Lock()
	l.writes = append(l.writes, w)
	l.mu.Unlock()
}

// all returns every write so far.
func (l *writeLog) all() []itemWrite {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.writes)
}

// count counts the writes that match.
func (l *writeLog) count(match func(itemWrite) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.writes {
		if match(w) {
			n++
		}
	}
	return n
}

// writeItems starts one writer per conversation, each appending one
// message at a time to base until stop closes, pausing pace between
// writes; every attempt goes to log. The returned function waits for them.
func writeItems(c *http.Client, base, label string, convs []string, pace time.Duration, stop <-chan struct{}, log *writeLog) (wait func()) {
	var wg sync.WaitGroup
	for i, conv := range convs {
		name := fmt.Sprintf("%s-%d", label, i)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				log.add(appendItem(c, base, conv, fmt.Sprintf("%s write %d", name, n), name))
				select {
				case <-stop:
					return
				case <-time.After(pace):
				}
			}
		})
	}
	return wg.Wait
}

// appendItem appends one user message to conv.
func appendItem(c *http.Client, base, conv, text, writer string) itemWrite {
	body, _ := json.Marshal(map[string]any{"items": []map[string]any{{"type": "message", "role": "user", "content": text}}})
	w := itemWrite{writer: writer, conv: conv, sent: time.Now()}
	req, _ := http.NewRequest("POST", base+"/v1/conversations/"+conv+"/items", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e2eKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		w.err, w.done = err, time.Now()
		return w
	}
	defer resp.Body.Close()
	var ans struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ans)
	w.done, w.status, w.code = time.Now(), resp.StatusCode, ans.Error.Code
	if err != nil {
		w.err = err
	} else if resp.StatusCode == http.StatusOK && len(ans.Data) == 1 {
		w.id = ans.Data[0].ID
	}
	return w
}

// listItemIDs returns conv's item ids at base in sequence order: index i
// holds the item at conversation position i+1.
func listItemIDs(c *http.Client, base, conv string) ([]string, error) {
	var ids []string
	after := ""
	for {
		u := base + "/v1/conversations/" + conv + "/items?order=asc&limit=100"
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			HasMore bool `json:"has_more"`
		}
		if err := getJSONVia(c, u, e2eKey, &page); err != nil {
			return nil, err
		}
		for _, it := range page.Data {
			ids = append(ids, it.ID)
		}
		if !page.HasMore || len(page.Data) == 0 {
			return ids, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

// itemSnapshot lists every conversation's item ids at base.
func itemSnapshot(t *testing.T, c *http.Client, base string, convs []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, conv := range convs {
		ids, err := listItemIDs(c, base, conv)
		if err != nil {
			t.Fatalf("list items of %s at %s: %v", conv, base, err)
		}
		out[conv] = ids
	}
	return out
}

// itemPositions maps item id to its conversation position in a snapshot.
func itemPositions(snap map[string][]string) map[string]int {
	out := map[string]int{}
	for _, ids := range snap {
		for i, id := range ids {
			out[id] = i + 1
		}
	}
	return out
}

// quarantinedItem is an item.add event a former primary set aside.
type quarantinedItem struct {
	Conv     string
	Seq      int64 // the conversation position it had
	ID       string
	NewEpoch int64
}

// readQuarantine reads a region's quarantine and returns the item additions
// in it, and how many events it holds in all.
func readQuarantine(t *testing.T, c *http.Client, base string) ([]quarantinedItem, int) {
	t.Helper()
	var q struct {
		Data []struct {
			Kind     string          `json:"kind"`
			NewEpoch int64           `json:"new_epoch"`
			Payload  json.RawMessage `json:"payload"`
		} `json:"data"`
	}
	if err := getJSONVia(c, base+"/admin/quarantine", e2eAdmin, &q); err != nil {
		t.Fatalf("quarantine: %v", err)
	}
	var items []quarantinedItem
	for _, ev := range q.Data {
		if ev.Kind != "item.add" {
			continue
		}
		var p struct {
			ConversationID string `json:"conversation_id"`
			Seq            int64  `json:"seq"`
			ID             string `json:"id"`
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("quarantined item.add payload %s: %v", ev.Payload, err)
		}
		items = append(items, quarantinedItem{Conv: p.ConversationID, Seq: p.Seq, ID: p.ID, NewEpoch: ev.NewEpoch})
	}
	return items, len(q.Data)
}

// TestPartitionSyncReplication cuts the link between the two regions
// while a client keeps appending items to the primary; the controller (in
// its own namespace) still reaches both, so the primary keeps its lease
// and only replication is cut. In sync mode the primary answers every
// write it cannot replicate with a 503, and nothing it acknowledged before
// the link came back is missing on the standby; with degrade_to_async it
// keeps acknowledging and reports that it degraded. After the link
// returns the standby catches up to the same position and items.
func TestPartitionSyncReplication(t *testing.T) {
	for _, tc := range []struct {
		name    string
		degrade bool
	}{{"sync", false}, {"degrade_to_async", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := startNetRegions(t, "sync", tc.degrade, 2*time.Second)
			convs := createConversations(t, r.ca, r.east, 3)
			var log writeLog
			stop := make(chan struct{})
			wait := writeItems(r.ca, r.east, "east", convs, 10*time.Millisecond, stop, &log)
			stopped := false
			defer func() {
				if !stopped {
					close(stop)
					wait()
				}
			}()
			waitFor(t, 10*time.Second, "acknowledged writes before the partition", func() bool {
				return log.count(itemWrite.acked) >= 15
			})

			cutAt := time.Now()
			r.lab.isolate("A", "B")
			t.Logf("link eastus2–centralus cut; the controller still reaches both")
			if !tc.degrade {
				waitFor(t, 10*time.Second, "writes refused during the partition", func() bool {
					return log.count(func(w itemWrite) bool { return w.sent.After(cutAt) && w.status == 503 }) >= 6
				})
			} else {
				waitFor(t, 10*time.Second, "the primary to report it degraded", func() bool {
					st, err := r.state(r.ca, r.east)
					rep := st.Replication["centralus"]
					return err == nil && rep.Degraded && rep.DegradedAcks > 0
				})
				waitFor(t, 10*time.Second, "writes acknowledged while degraded", func() bool {
					return log.count(func(w itemWrite) bool { return w.sent.After(cutAt) && w.acked() }) >= 6
				})
			}
			during, err := r.state(r.ca, r.east)
			if err != nil {
				t.Fatal(err)
			}
			rep := during.Replication["centralus"]
			if during.Role != "primary" || during.Lease == nil || !during.Lease.Valid {
				t.Fatalf("primary lost its lease although the controller reaches it: %+v", during)
			}
			if rep.LagEvents == 0 {
				t.Errorf("replication lag 0 during the partition: %+v", rep)
			}
			var ready struct {
				Replication map[string]struct {
					Events   int64 `json:"events"`
					Degraded bool  `json:"degraded"`
				} `json:"replication"`
			}
			if err := getJSONVia(r.ca, r.east+"/readyz", "", &ready); err != nil {
				t.Fatal(err)
			}
			if got := ready.Replication["centralus"]; got.Degraded != tc.degrade || got.Events == 0 {
				t.Errorf("/readyz during the partition: %+v, want degraded=%v and a lag", got, tc.degrade)
			}
			// The standby hears nothing while the link is down: what it
			// holds now is what it held when the link came back.
			standbyHeld := itemPositions(itemSnapshot(t, r.cb, r.central, convs))

			healAt := time.Now()
			r.lab.heal("A", "B")
			waitFor(t, 30*time.Second, "writes acknowledged again after the link returned", func() bool {
				return log.count(func(w itemWrite) bool { return w.sent.After(healAt) && w.acked() }) >= 6
			})
			close(stop)
			wait()
			stopped = true
			var east, central adminState
			waitFor(t, 20*time.Second, "the standby to catch up", func() bool {
				var err1, err2 error
				east, err1 = r.state(r.ca, r.east)
				central, err2 = r.state(r.cb, r.central)
				rep := east.Replication["centralus"]
				return err1 == nil && err2 == nil && central.Position.Seq == east.Position.Seq &&
					rep.LagEvents == 0 && !rep.Degraded
			})
			if east.Role != "primary" || central.Role != "standby" || east.Epoch != 1 || central.Epoch != 1 {
				t.Errorf("roles changed: eastus2 %s/%d, centralus %s/%d", east.Role, east.Epoch, central.Role, central.Epoch)
			}
			eastItems, centralItems := itemSnapshot(t, r.ca, r.east, convs), itemSnapshot(t, r.cb, r.central, convs)
			for _, conv := range convs {
				if !slices.Equal(eastItems[conv], centralItems[conv]) {
					t.Errorf("conversation %s: %d items on the primary, %d on the standby after catching up", conv, len(eastItems[conv]), len(centralItems[conv]))
				}
			}

			writes := log.all()
			var acked, refused, unreplicatedAcks int
			codes := map[string]int{}
			onStandby := itemPositions(centralItems)
			for _, w := range writes {
				if !w.acked() {
					if w.sent.After(cutAt) && w.sent.Before(healAt) {
						refused++
						codes[fmt.Sprintf("%d %s", w.status, w.code)]++
					}
					continue
				}
				acked++
				if onStandby[w.id] == 0 {
					t.Errorf("acknowledged item %s (%s) missing on the standby after catching up", w.id, w.writer)
				}
				if w.done.Before(healAt) && standbyHeld[w.id] == 0 {
					unreplicatedAcks++
					if !tc.degrade {
						t.Errorf("item %s acknowledged at %s (%.0fms after the cut) but the standby did not hold it: a silent acknowledgement",
							w.id, w.done.Format(time.StampMilli), w.done.Sub(cutAt).Seconds()*1000)
					}
				}
			}
			if !tc.degrade {
				if refused == 0 {
					t.Fatal("no write refused during the partition")
				}
				for code, n := range codes {
					if code != "503 replication_failed" {
						t.Errorf("%d writes during the partition answered %q, want 503 replication_failed", n, code)
					}
				}
			} else if degraded := east.Replication["centralus"].DegradedAcks; unreplicatedAcks == 0 || int64(unreplicatedAcks) > degraded {
				t.Errorf("%d writes acknowledged without the standby, primary reported %d degraded acknowledgements", unreplicatedAcks, degraded)
			}
			t.Logf("%d writes acknowledged, %d refused during the %.1fs partition (%v); %d acknowledged without the standby (degraded acks reported: %d); "+
				"standby caught up to seq %d",
				acked, refused, healAt.Sub(cutAt).Seconds(), codes, unreplicatedAcks, east.Replication["centralus"].DegradedAcks, central.Position.Seq)
		})
	}
}

// fenceRun is the part of a controller run the fencing test reads.
type fenceRun struct {
	ID     string         `json:"id"`
	Kind   string         `json:"kind"`
	From   string         `json:"from"`
	To     string         `json:"to"`
	Status string         `json:"status"`
	Error  string         `json:"error"`
	Data   map[string]any `json:"data"`
	Steps  []struct {
		Name    string         `json:"name"`
		Status  string         `json:"status"`
		Started time.Time      `json:"started"`
		Ended   time.Time      `json:"ended"`
		Detail  map[string]any `json:"detail"`
	} `json:"steps"`
}

func (r fenceRun) step(name string) (started, ended time.Time, detail map[string]any) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Started, s.Ended, s.Detail
		}
	}
	return time.Time{}, time.Time{}, nil
}

// TestPartitionLeaseFencing isolates the primary region from the
// controller, the edge and the standby while its own clients still reach
// it, and keeps writing to it directly the whole time. The controller
// fails over to the standby; the test also writes to the new primary in
// the same conversations, then heals the network and lets the old primary
// rejoin. It checks:
//
//   - the old primary acknowledged no write sent after its lease ended:
//     its lease ends before both the cut plus one TTL (its last renewal
//     was sent before the cut) and the controller's promotion (which waits
//     out every grant);
//   - every item the old primary acknowledged is either readable on the
//     new primary or in the old primary's quarantine, never both and never
//     neither: nothing acknowledged after the fork is silently merged, and
//     everything acknowledged before it survived;
//   - in sync mode none is in quarantine (zero loss) and no conversation
//     position was acknowledged by both epochs; in async mode the
//     positions acknowledged by both are reported, and the old epoch's
//     items there are exactly the quarantined ones;
//   - after rejoining, the old primary is a standby of the new epoch with
//     the new primary's items.
func TestPartitionLeaseFencing(t *testing.T) {
	const ttl = 2 * time.Second
	for _, tc := range []struct {
		name, mode string
		cut        []string // what the primary is cut off from
	}{
		{"async", "async", []string{"B", "W"}},
		{"sync", "sync", []string{"B", "W"}},
		// The primary still reaches the standby, which vouches for its
		// lease until the controller tells it to stop.
		{"async-standby-reachable", "async", []string{"W"}},
	} {
		mode := tc.mode
		t.Run(tc.name, func(t *testing.T) {
			r := startNetRegions(t, mode, false, ttl)
			convs := createConversations(t, r.ca, r.east, 4)
			waitFor(t, 10*time.Second, "the controller to see both regions and the conversations to replicate", func() bool {
				s, err := controllerStatusVia(r.cw, r.controller)
				st, err2 := r.state(r.ca, r.east)
				return err == nil && err2 == nil && s.Regions["eastus2"].Up && s.Regions["centralus"].Up &&
					s.Regions["eastus2"].Readiness.Writable && st.Replication["centralus"].LagEvents == 0
			})
			var oldLog, newLog writeLog
			stop := make(chan struct{})
			waitOld := writeItems(r.ca, r.east, "old", convs, 10*time.Millisecond, stop, &oldLog)
			var waitNew func()
			stopped := false
			defer func() {
				if !stopped {
					close(stop)
					waitOld()
					if waitNew != nil {
						waitNew()
					}
				}
			}()
			waitFor(t, 10*time.Second, "writes acknowledged by the primary", func() bool {
				return oldLog.count(itemWrite.acked) >= 20
			})

			cutStart := time.Now()
			r.lab.isolate("A", tc.cut...)
			cutDone := time.Now()
			t.Logf("eastus2 cut off from %v (took %v); its clients still reach it", tc.cut, cutDone.Sub(cutStart).Round(time.Millisecond))

			var run fenceRun
			waitFor(t, 30*time.Second, "the controller to fail over", func() bool {
				var s struct {
					Last *fenceRun `json:"last"`
				}
				if err := getJSONVia(r.cw, r.controller+"/v1/status", e2eAdmin, &s); err != nil || s.Last == nil || s.Last.Kind != "failover" {
					return false
				}
				run = *s.Last
				return run.Status == "completed" || run.Status == "failed"
			})
			if run.Status != "completed" || run.To != "centralus" {
				t.Fatalf("failover %s: %s", run.Status, run.Error)
			}
			promoteStart, promoteEnd, _ := run.step("promote")
			_, _, fence := run.step("fence-old-primary")
			// The controller promotes only once every lease it or the
			// standby granted has ended; cut off from both, the primary
			// renewed last before the cut.
			leaseEnd := promoteStart
			if bound := cutDone.Add(ttl); slices.Contains(tc.cut, "B") && bound.Before(leaseEnd) {
				leaseEnd = bound
			}
			t.Logf("failover completed: fence %v, promotion %.0fms after the cut, controller RTO %vms",
				fence, promoteStart.Sub(cutDone).Seconds()*1000, run.Data["rto_ms"])

			waitNew = writeItems(r.cb, r.central, "new", convs, 10*time.Millisecond, stop, &newLog)
			waitFor(t, 10*time.Second, "writes acknowledged by the new primary", func() bool {
				return newLog.count(itemWrite.acked) >= 12
			})
			// The old primary as its clients see it before it rejoins.
			oldView := itemSnapshot(t, r.ca, r.east, convs)
			isolatedState, err := r.state(r.ca, r.east)
			if err != nil {
				t.Fatal(err)
			}

			healAt := time.Now()
			r.lab.heal("A", tc.cut...)
			var east, central adminState
			waitFor(t, 30*time.Second, "the old primary to rejoin as a caught-up standby of epoch 2", func() bool {
				var err1, err2 error
				east, err1 = r.state(r.ca, r.east)
				central, err2 = r.state(r.cb, r.central)
				rep := central.Replication["eastus2"]
				return err1 == nil && err2 == nil && east.Role == "standby" && east.Epoch == 2 &&
					rep.PeerEpoch == 2 && rep.LagEvents == 0
			})
			rejoinedAt := time.Now()
			close(stop)
			waitOld()
			waitNew()
			stopped = true
			waitFor(t, 10*time.Second, "the last writes to replicate", func() bool {
				var err1, err2 error
				east, err1 = r.state(r.ca, r.east)
				central, err2 = r.state(r.cb, r.central)
				return err1 == nil && err2 == nil && east.Position.Seq == central.Position.Seq
			})
			if central.Role != "primary" || central.Epoch != 2 {
				t.Fatalf("centralus is %s at epoch %d after the failover", central.Role, central.Epoch)
			}

			newFinal, oldFinal := itemSnapshot(t, r.cb, r.central, convs), itemSnapshot(t, r.ca, r.east, convs)
			for _, conv := range convs {
				if !slices.Equal(newFinal[conv], oldFinal[conv]) {
					t.Errorf("conversation %s: %d items on the new primary, %d on the rejoined old primary", conv, len(newFinal[conv]), len(oldFinal[conv]))
				}
			}
			qItems, qEvents := readQuarantine(t, r.ca, r.east)
			inQuarantine := map[string]quarantinedItem{}
			for _, q := range qItems {
				inQuarantine[q.ID] = q
			}
			onNew, onOldFinal, oldPos, newPos := itemPositions(newFinal), itemPositions(oldFinal), itemPositions(oldView), itemPositions(newFinal)

			// 1. The lease: nothing acknowledged that was sent after it ended.
			var afterCut, refusedAfterLease int
			var lastAck time.Time
			refusals := map[string]int{}
			for _, w := range oldLog.all() {
				if !w.acked() {
					if w.sent.After(leaseEnd) {
						refusedAfterLease++
						refusals[fmt.Sprintf("%d %s", w.status, w.code)]++
					}
					continue
				}
				if w.sent.After(cutDone) {
					afterCut++
				}
				if w.done.After(lastAck) {
					lastAck = w.done
				}
				if !w.sent.Before(leaseEnd) {
					t.Errorf("old primary acknowledged item %s sent %.0fms after the cut, after its lease ended (%.0fms after the cut)",
						w.id, w.sent.Sub(cutDone).Seconds()*1000, leaseEnd.Sub(cutDone).Seconds()*1000)
				}
			}
			if refusedAfterLease == 0 {
				t.Fatal("no write reached the old primary after its lease ended: the test did not exercise the fence")
			}
			for code := range refusals {
				if !strings.HasPrefix(code, "503 ") {
					t.Errorf("old primary answered %d writes after its lease with %q, want 503", refusals[code], code)
				}
			}
			if mode == "async" && afterCut == 0 {
				t.Error("async: the old primary acknowledged nothing between the cut and the end of its lease; the lease was not what stopped it")
			}

			// 2. Every item the old primary acknowledged: on the new primary
			// xor in its quarantine, at the position it was acknowledged at.
			type pos struct {
				conv string
				n    int
			}
			ackedOld := map[pos]string{}
			var survived, quarantined int
			for _, w := range oldLog.all() {
				if !w.acked() {
					continue
				}
				q, isQ := inQuarantine[w.id]
				var p int
				switch {
				case onNew[w.id] != 0 && isQ:
					t.Errorf("item %s is both on the new primary and in quarantine", w.id)
					continue
				case onNew[w.id] != 0:
					survived++
					p = onNew[w.id]
				case isQ:
					quarantined++
					p = int(q.Seq)
					if q.Conv != w.conv || q.NewEpoch != 2 {
						t.Errorf("quarantined item %s: %+v, acknowledged in %s", w.id, q, w.conv)
					}
				default:
					t.Errorf("item %s acknowledged by the old primary at %s is neither on the new primary nor in quarantine: silently lost",
						w.id, w.done.Format(time.StampMilli))
					continue
				}
				// Before it rejoined (if it had not yet), the old primary
				// held the item at the same position.
				if v := oldPos[w.id]; v != 0 && v != p {
					t.Errorf("item %s at position %d on the isolated old primary, %d after the failover", w.id, v, p)
				}
				ackedOld[pos{w.conv, p}] = w.id
			}
			for _, q := range qItems {
				if onNew[q.ID] != 0 || onOldFinal[q.ID] != 0 {
					t.Errorf("quarantined item %s was merged into the new epoch", q.ID)
				}
			}

			// 3. Positions acknowledged by both epochs.
			var both int
			ackedNew := 0
			for _, w := range newLog.all() {
				if !w.acked() {
					continue
				}
				ackedNew++
				p := newPos[w.id]
				if p == 0 {
					t.Errorf("item %s acknowledged by the new primary is missing on it", w.id)
					continue
				}
				if onOldFinal[w.id] != p {
					t.Errorf("item %s of the new epoch is at position %d on the rejoined old primary, %d on the new primary", w.id, onOldFinal[w.id], p)
				}
				if old, ok := ackedOld[pos{w.conv, p}]; ok {
					both++
					if _, isQ := inQuarantine[old]; !isQ {
						t.Errorf("position %d of %s acknowledged by both epochs (%s and %s) and the old one is not quarantined", p, w.conv, old, w.id)
					}
				}
			}
			if mode == "sync" {
				if quarantined > 0 || both > 0 {
					t.Errorf("sync: %d acknowledged items quarantined (lost), %d positions acknowledged by both epochs; want 0 and 0", quarantined, both)
				}
			} else if quarantined == 0 {
				t.Log("async: every item acknowledged after the cut had replicated before it (nothing to quarantine this run)")
			}
			if isolatedState.Role == "primary" && isolatedState.Lease != nil && isolatedState.Lease.Valid {
				t.Errorf("the isolated old primary still reported a valid lease after the failover: %+v", isolatedState.Lease)
			}
			t.Logf("old primary: %d acknowledged (%d after the cut, the last %.0fms after it; lease ended by %.0fms, promotion began %.0fms / ended %.0fms after the cut), "+
				"%d refused after the lease (%v); %d survived on the new primary, %d quarantined (RPO) of %d quarantined events; "+
				"new primary: %d acknowledged; %d positions acknowledged by both epochs; rejoined %.1fs after healing",
				oldLog.count(itemWrite.acked), afterCut, lastAck.Sub(cutDone).Seconds()*1000, leaseEnd.Sub(cutDone).Seconds()*1000,
				promoteStart.Sub(cutDone).Seconds()*1000, promoteEnd.Sub(cutDone).Seconds()*1000,
				refusedAfterLease, refusals, survived, quarantined, qEvents, ackedNew, both, rejoinedAt.Sub(healAt).Seconds())
		})
	}
}

// controllerStatusVia reads the controller's status with client c.
func controllerStatusVia(c *http.Client, base string) (ctlStatus, error) {
	var st ctlStatus
	err := getJSONVia(c, base+"/v1/status", e2eAdmin, &st)
	return st, err
}

// TestPartitionWitnessLost checks the other two consequences of the
// fencing rule (two of three voters needed), in async mode so that only
// the lease can stop a write: with the controller cut off from both
// regions, the primary keeps acknowledging writes on the standby's
// vouching, well past a lease TTL, and nothing is promoted; when the
// regions are then cut apart too, the primary stops acknowledging within
// one TTL rather than writing alone. Once the network is back, the same
// primary, at the same epoch, writes again on the controller's lease.
func TestPartitionWitnessLost(t *testing.T) {
	const ttl = 2 * time.Second
	r := startNetRegions(t, "async", false, ttl)
	convs := createConversations(t, r.ca, r.east, 2)
	var log writeLog
	stop := make(chan struct{})
	wait := writeItems(r.ca, r.east, "east", convs, 10*time.Millisecond, stop, &log)
	defer func() {
		close(stop)
		wait()
	}()
	waitFor(t, 10*time.Second, "acknowledged writes", func() bool { return log.count(itemWrite.acked) >= 10 })

	r.lab.isolate("W", "A", "B")
	witnessCut := time.Now()
	waitFor(t, 20*time.Second, "writes acknowledged two lease TTLs after the controller was cut off", func() bool {
		return log.count(func(w itemWrite) bool { return w.acked() && w.sent.After(witnessCut.Add(2*ttl)) }) >= 4
	})
	st, err := r.state(r.ca, r.east)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lease == nil || !st.Lease.Valid || st.Lease.From != "standby" {
		t.Errorf("lease without the controller: %+v, want valid from the standby", st.Lease)
	}
	if n := log.count(func(w itemWrite) bool { return !w.acked() && w.sent.After(witnessCut) }); n > 0 {
		t.Errorf("%d writes refused while only the controller was unreachable", n)
	}

	r.lab.isolate("A", "B")
	regionsCut := time.Now()
	waitFor(t, 10*time.Second, "writes refused once the regions are cut apart too", func() bool {
		return log.count(func(w itemWrite) bool { return !w.acked() && w.sent.After(regionsCut.Add(ttl)) }) >= 4
	})
	var lastAck time.Time
	for _, w := range log.all() {
		if w.acked() && w.done.After(lastAck) {
			lastAck = w.done
		}
		if w.acked() && !w.sent.Before(regionsCut.Add(ttl)) {
			t.Errorf("item %s acknowledged %.0fms after the regions were cut apart, with no voter left", w.id, w.sent.Sub(regionsCut).Seconds()*1000)
		}
		if !w.acked() && w.sent.After(regionsCut) && w.status != 503 {
			t.Errorf("write refused with %d %s (%v), want 503", w.status, w.code, w.err)
		}
	}
	central, err := r.state(r.cb, r.central)
	if err != nil {
		t.Fatal(err)
	}
	if central.Role != "standby" || central.Epoch != 1 {
		t.Errorf("centralus is %s at epoch %d with no controller: nothing may promote it", central.Role, central.Epoch)
	}

	// The primary's side first, so the controller sees its primary again
	// before it sees the standby (a standby seen alone would be a failover
	// target).
	r.lab.heal("A", "B")
	r.lab.heal("W", "A")
	waitFor(t, 20*time.Second, "the controller to see the primary again", func() bool {
		s, err := controllerStatusVia(r.cw, r.controller)
		return err == nil && s.Regions["eastus2"].Up
	})
	r.lab.heal("W", "B")
	healed := time.Now()
	waitFor(t, 20*time.Second, "writes acknowledged on the controller's lease", func() bool {
		st, err := r.state(r.ca, r.east)
		return err == nil && st.Lease != nil && st.Lease.Valid && st.Lease.From == "controller" &&
			log.count(func(w itemWrite) bool { return w.acked() && w.sent.After(healed) }) >= 4
	})
	s, err := controllerStatusVia(r.cw, r.controller)
	if err != nil {
		t.Fatal(err)
	}
	if s.Primary != "eastus2" || s.Epoch != 1 || s.Last != nil {
		t.Errorf("controller after the partition: primary %s epoch %d, last run %+v; want eastus2 at epoch 1 and no failover", s.Primary, s.Epoch, s.Last)
	}
	t.Logf("controller unreachable: writes acknowledged for %.1fs on the standby's vouching; regions cut apart too: last acknowledgement %.0fms after (TTL %v); no promotion",
		regionsCut.Sub(witnessCut).Seconds(), lastAck.Sub(regionsCut).Seconds()*1000, ttl)
}
