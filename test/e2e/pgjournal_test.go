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
	"testing"
	"time"

	"github.com/understudy/understudy/internal/testutil/pgtest"
)

// pgTopology: failoverTopology with each region on PostgreSQL (DSNs %[4]s
// and %[5]s) and two gateway replicas per region behind the region's
// balancer; sync replication over transport %[6]s (journal: one server
// per region; engine: centralus's server streams from eastus2's).
const pgTopology = `version: 1
name: e2e-pg-%[6]s
pattern: hot-warm
targets: {rto: 10s, rpo: 0s}
keys: [{name: e2e, key: %[1]s}]
admin: {token: %[2]s}
deployments: [{name: %[3]s, version: "2025-04-14"}]
regions:
  - name: eastus2
    listen: 127.0.0.1:0
    replicas: 2
    store: {driver: postgres, dsn: "%[4]s", max_conns: 6}
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0"}]}
  - name: centralus
    listen: 127.0.0.1:0
    replicas: 2
    store: {driver: postgres, dsn: "%[5]s", max_conns: 6}
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0"}]}
replication: {mode: sync, transport: %[6]s, secret: rep-e2e-0123456789abcdef, sync_timeout: 2s}
gateway: {access_log: false}
edge: {listen: 127.0.0.1:0, attempt_timeout: 1s, eject_base: 500ms, eject_max: 2s}
probes: {interval: 500ms, timeout: 250ms, sample_size: 3, successful_samples_required: 2}
controller: {listen: 127.0.0.1:0, lease_ttl: 2s, failures: 3, window: 2s, probe_interval: 250ms, cooldown: 1s}
`

// upBalancers is the balancers and control parts of up.json.
type upBalancers struct {
	Control   string `json:"control"`
	Balancers []struct {
		Region string `json:"region"`
		Listen string `json:"listen"`
	} `json:"balancers"`
}

// TestPostgresJournalReplicasFailoverFailback: two regions, each on its
// own PostgreSQL server (data checksums on) with two gateway replicas
// (four gateway processes), journal replication in sync mode, the
// controller and the edge under `up`. Agent turns through the edge with
// the official SDK (bounded in count and time); then both gateways of the
// primary region, its model server and its PostgreSQL are SIGKILLed; the
// controller fails over by itself; no acknowledged turn is lost. Then the
// old region's database and gateways come back, it rejoins as a standby
// (its divergent events quarantined), `understudy failback` moves the
// primary back, and again no acknowledged turn is lost.
func TestPostgresJournalReplicasFailoverFailback(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two PostgreSQL servers and eight processes with load")
	}
	pgEast, pgCentral := pgtest.Start(t, pgtest.Options{}), pgtest.Start(t, pgtest.Options{})
	var dsns []string
	for _, pg := range []*pgtest.Server{pgEast, pgCentral} {
		dsn, err := pg.CreateDatabase(t.Context(), "understudy")
		if err != nil {
			t.Fatal(err)
		}
		dsns = append(dsns, dsn)
	}
	var checksums string
	if db, err := pgEast.Open("understudy"); err == nil {
		db.QueryRow("SHOW data_checksums").Scan(&checksums)
		db.Close()
	}
	if checksums != "on" {
		t.Fatalf("data_checksums = %q, want on", checksums)
	}

	// 2 model servers, 4 gateways, edge, controller.
	_, st := startUp(t, fmt.Sprintf(pgTopology, e2eKey, e2eAdmin, e2eModel, dsns[0], dsns[1], "journal"), 8)
	_, edge, _ := st.component("edge")
	_, ctl, _ := st.component("controller")
	var ub upBalancers
	if err := json.Unmarshal(readUpJSON(t, st), &ub); err != nil || len(ub.Balancers) != 2 {
		t.Fatalf("up.json balancers: %+v %v", ub, err)
	}
	regionURL := map[string]string{}
	for _, b := range ub.Balancers {
		regionURL[b.Region] = "http://" + b.Listen
	}
	for _, name := range []string{"gateway/eastus2/1", "gateway/eastus2/2", "gateway/centralus/1", "gateway/centralus/2"} {
		if pid, _, _ := st.component(name); pid == 0 {
			t.Fatalf("up.json lacks %s", name)
		}
	}
	waitFor(t, 30*time.Second, "a writable primary and its standby", func() bool {
		s, err := controllerStatus(t, ctl)
		east := s.Regions["eastus2"].Readiness
		return err == nil && east.Role == "primary" && east.Writable && s.Regions["centralus"].Readiness.Role == "standby"
	})

	// Bounded load: 4 workers, at most 150 turns each, stopped after the
	// failover in any case.
	stop := make(chan struct{})
	stopOnce := sync.OnceFunc(func() { close(stop) })
	var acks []timedAck
	var done sync.WaitGroup
	done.Go(func() { acks = timedAgentLoad(t, edge, 4, 150, stop) })
	defer func() { stopOnce(); done.Wait() }()
	<-time.After(4 * time.Second)

	// The primary region's outage: both gateways and the model server
	// (up's region-level control API), and its database.
	controlCall(t, ub.Control, "/v1/regions/eastus2/down")
	pgEast.Kill()
	killed := time.Now()
	var s ctlStatus
	waitFor(t, 40*time.Second, "an automatic failover to complete", func() bool {
		var err error
		s, err = controllerStatus(t, ctl)
		return err == nil && s.Last != nil && s.Last.Kind == "failover" && (s.Last.Status == "completed" || s.Last.Status == "failed")
	})
	if s.Last.Status != "completed" || s.Last.To != "centralus" || s.Primary != "centralus" || s.Epoch != 2 {
		t.Fatalf("failover: %+v", s.Last)
	}
	t.Logf("failover completed %s after the kill; controller RTO %vms (first failed probe to validated), target %vms; rpo_events %v",
		time.Since(killed).Round(time.Millisecond), s.Last.Data["rto_ms"], s.Last.Data["rto_target_ms"], s.Last.Data["rpo_events"])
	if s.Last.Data["rto_met"] != true {
		t.Errorf("RTO target missed: %v", s.Last.Data)
	}
	<-time.After(2 * time.Second) // turns acknowledged by the new primary too
	stopOnce()
	done.Wait()

	fromEast, fromCentral := 0, 0
	for _, a := range acks {
		switch a.region {
		case "eastus2":
			fromEast++
		case "centralus":
			fromCentral++
		}
	}
	if fromEast < 20 || fromCentral < 4 {
		t.Fatalf("%d turns acknowledged by eastus2 and %d by centralus; want at least 20 and 4", fromEast, fromCentral)
	}
	if m := lost(t, regionURL["centralus"], ackList(acks)); len(m) > 0 {
		t.Fatalf("%d of %d acknowledged turns lost after failover (sync replication); first %+v", len(m), len(acks), m[0])
	}
	t.Logf("%d agent turns acknowledged (%d by eastus2, %d by centralus), 0 lost", len(acks), fromEast, fromCentral)

	// The old region comes back: its database, then its processes.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := pgEast.Restart(ctx); err != nil {
		t.Fatalf("restart eastus2's postgres: %v\n%s", err, pgEast.Log())
	}
	controlCall(t, ub.Control, "/v1/regions/eastus2/up")
	waitFor(t, 40*time.Second, "eastus2 to rejoin as a caught-up standby", func() bool {
		s, err := controllerStatus(t, ctl)
		if err != nil {
			return false
		}
		east, central := s.Regions["eastus2"], s.Regions["centralus"]
		lag, ok := central.Readiness.Replication["eastus2"]
		return east.Up && east.Readiness.Role == "standby" && east.Readiness.Epoch == 2 && ok && lag.Events == 0
	})
	var q struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := getJSONVia(http.DefaultClient, regionURL["eastus2"]+"/admin/quarantine", e2eAdmin, &q); err != nil {
		t.Fatal(err)
	}
	t.Logf("eastus2 rejoined as standby of epoch 2; %d divergent events quarantined", len(q.Data))

	out, err := exec.Command(binary(t), "failback", "-f", st.Topology).CombinedOutput()
	if err != nil {
		t.Fatalf("failback: %v\n%s", err, out)
	}
	s, err = controllerStatus(t, ctl)
	if err != nil || s.Primary != "eastus2" || s.Epoch != 3 || s.Last.Data["rpo_events"] != float64(0) {
		t.Fatalf("after failback: %+v %v\n%s", s, err, out)
	}
	t.Logf("failback: controller RTO %vms, rpo_events %v", s.Last.Data["rto_ms"], s.Last.Data["rpo_events"])
	if m := lost(t, regionURL["eastus2"], ackList(acks)); len(m) > 0 {
		t.Fatalf("%d acknowledged turns lost after failback; first %+v", len(m), m[0])
	}
	// Both replicas of the new primary serve the turns: every conversation
	// reads the same from each of them.
	for _, name := range []string{"gateway/eastus2/1", "gateway/eastus2/2"} {
		url := componentURL(t, st, name)
		if m := lost(t, url, ackList(acks)); len(m) > 0 {
			t.Fatalf("%s lacks %d acknowledged turns", name, len(m))
		}
	}
}

// componentURL reads a component's current URL from up.json (a restarted
// replica listens on a new port).
func componentURL(t *testing.T, st upState, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(st.Topology), "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	var now upState
	if err := json.Unmarshal(data, &now); err != nil {
		t.Fatal(err)
	}
	_, url, _ := now.component(name)
	if !strings.HasPrefix(url, "http") {
		t.Fatalf("no URL for %s in up.json", name)
	}
	return url
}
