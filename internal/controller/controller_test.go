package controller

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// A region whose /readyz hangs (a frozen process) must not hold up the
// controller's status while its probe is outstanding.
func TestStatusAnswersWhileAProbeHangs(t *testing.T) {
	entered := make(chan struct{})
	var hung *http.Request
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung = r
		close(entered)
		<-r.Context().Done() // until the probe gives up
	}))
	defer frozen.Close()
	fine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ready":true,"role":"standby","epoch":1}`))
	}))
	defer fine.Close()

	topo := exampleTopology(t)
	topo.Regions[0].URL, topo.Regions[1].URL = frozen.URL, fine.URL
	topo.Probes.Timeout = topology.Duration(30 * time.Second)
	c, err := New(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.state = persisted{Primary: topo.Regions[0].Name, Epoch: 1}
	stepped := make(chan struct{})
	go func() {
		c.step(t.Context())
		close(stepped)
	}()
	<-entered
	c.Status()
	if err := hung.Context().Err(); err != nil {
		t.Fatalf("Status answered only after the hung probe ended (%v)", err)
	}
	frozen.CloseClientConnections()
	<-stepped
	if v := c.Status().Regions; len(v) != 2 {
		t.Fatalf("status regions %v", v)
	}
}

// After an unplanned failover whose old primary was down at report time,
// the report gets the exact count of events that region set aside once it
// answers again as a standby of the new epoch.
func TestReportCompletedAtRejoin(t *testing.T) {
	topo := exampleTopology(t)
	c, err := New(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRun("failover-1", "failover", "eastus2", "centralus", "test", c.steps(false))
	r.Status = RunCompleted
	r.Set("epoch", int64(2))
	c.last = r
	east := c.views["eastus2"]

	east.LastOK, east.Readiness = false, Readiness{}
	c.noteRejoinLocked()
	if _, ok := r.Int("quarantined"); ok {
		t.Fatal("quarantined set while the old primary is down")
	}
	east.LastOK, east.Readiness = true, Readiness{Role: "fenced", Epoch: 1, Quarantined: 0}
	c.noteRejoinLocked()
	if _, ok := r.Int("quarantined"); ok {
		t.Fatal("quarantined set before the old primary rejoined")
	}
	east.Readiness = Readiness{Role: "standby", Epoch: 2, Quarantined: 3}
	c.noteRejoinLocked()
	if q, ok := r.Int("quarantined"); !ok || q != 3 {
		t.Fatalf("quarantined = %d, %v; want 3", q, ok)
	}
	runs, err := c.journal.List()
	if err != nil || len(runs) != 1 {
		t.Fatalf("journal: %d runs, %v", len(runs), err)
	}
	if q, _ := runs[0].Int("quarantined"); q != 3 {
		t.Fatalf("journaled quarantined = %d, want 3", q)
	}
}

// A standby that did not answer its last probe is no failover target,
// even while the detector still counts it up: a controller cut off from
// every region must not pick it.
func TestTargetMustAnswerItsLastProbe(t *testing.T) {
	topo := exampleTopology(t)
	c, err := New(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	central := c.views["centralus"]
	central.Up, central.LastOK = true, false
	if got, why := c.pickTargetLocked(t.Context(), "eastus2"); got != "" {
		t.Fatalf("picked %s with its last probe failed", got)
	} else if why == "" {
		t.Fatal("no reason given")
	}
	central.LastOK = true
	if got, why := c.pickTargetLocked(t.Context(), "eastus2"); got != "centralus" {
		t.Fatalf("picked %q (%s), want centralus", got, why)
	}
}

// exampleTopology is `understudy init`'s topology, loaded.
func exampleTopology(t *testing.T) *topology.Topology {
	t.Helper()
	dir := t.TempDir()
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-ctl-0123456789abcdef", AdminToken: "adm-ctl-0123456789abcdef",
		ReplicationSecret: "rep-ctl-0123456789abcdef", Ports: topology.DefaultPorts})
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}
