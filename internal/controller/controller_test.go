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
