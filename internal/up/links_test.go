package up

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// linkedUp prepares an Up whose topology enables links, with eastus2's
// gateway played by gw, and starts the links.
func linkedUp(t *testing.T, gw *httptest.Server) (*Up, []byte) {
	t.Helper()
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
		ReplicationSecret: "repl-0123456789abcdef", Ports: topology.DefaultPorts})
	src = bytes.Replace(src, []byte("listen: 127.0.0.1:7081"), []byte("listen: "+strings.TrimPrefix(gw.URL, "http://")), 1)
	src = append(src, []byte("links:\n  enabled: true\n  latency: 5ms\n")...)
	dir := t.TempDir()
	tp, err := topology.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	tp.Dir = dir
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatal(err)
	}
	u, _ := New(filepath.Join(dir, "t.yaml"), Options{Stdout: io.Discard})
	u.Topology, u.TopologyPath = tp, filepath.Join(dir, "up-topology.yaml")
	if err := u.startLinks(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.closeLinks)
	return u, src
}

func TestLinksLayout(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "eastus2") }))
	defer gw.Close()
	u, _ := linkedUp(t, gw)

	var names []string
	for _, l := range u.Links() {
		names = append(names, l.Name)
		if !strings.HasPrefix(l.Admin, u.LinksAdmin()+"/links/") || l.Listen == "" {
			t.Errorf("link %+v", l)
		}
		if got := u.Link(l.Name).Status().Latency; got != 5*time.Millisecond {
			t.Errorf("%s latency %v, want links.latency 5ms", l.Name, got)
		}
	}
	want := []string{"edge-to-eastus2", "controller-to-eastus2", "eastus2-to-controller", "eastus2-to-centralus",
		"edge-to-centralus", "controller-to-centralus", "centralus-to-controller", "centralus-to-eastus2"}
	if !slices.Equal(names, want) {
		t.Fatalf("links %v, want %v", names, want)
	}

	// Each component's topology points what it dials at its own proxies.
	addr := func(name string) string { return "http://" + u.Link(name).Addr().String() }
	for _, tc := range []struct {
		component  string
		regions    map[string]string
		controller string
	}{
		{"edge", map[string]string{"eastus2": addr("edge-to-eastus2"), "centralus": addr("edge-to-centralus")}, "http://127.0.0.1:7070"},
		{"controller", map[string]string{"eastus2": addr("controller-to-eastus2"), "centralus": addr("controller-to-centralus")}, "http://127.0.0.1:7070"},
		{"gateway/eastus2", map[string]string{"eastus2": gw.URL, "centralus": addr("eastus2-to-centralus")}, addr("eastus2-to-controller")},
		{"gateway/centralus", map[string]string{"eastus2": addr("centralus-to-eastus2"), "centralus": "http://127.0.0.1:7082"}, addr("centralus-to-controller")},
	} {
		t.Run(tc.component, func(t *testing.T) {
			path := u.links.files[tc.component]
			ct, err := topology.Load(path, os.Getenv)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			for r, want := range tc.regions {
				if got := ct.Region(r).URL; got != want {
					t.Errorf("region %s url %s, want %s", r, got, want)
				}
				if got := ct.Region(r).Listen; got != u.Topology.Region(r).Listen {
					t.Errorf("region %s listen changed to %s", r, got)
				}
			}
			if ct.Controller.URL != tc.controller {
				t.Errorf("controller url %s, want %s", ct.Controller.URL, tc.controller)
			}
			specs := u.withLinks([]Spec{{Name: tc.component, Args: []string{"x", "-f", u.TopologyPath, "--region", "r"}}})
			if specs[0].Args[2] != path {
				t.Errorf("args %v, want -f %s", specs[0].Args, path)
			}
		})
	}
	if specs := u.withLinks([]Spec{{Name: "modelsim/eastus2/m", Args: []string{"modelsim", "--listen", "x"}}}); specs[0].Args[2] != "x" {
		t.Errorf("modelsim args changed: %v", specs[0].Args)
	}
}

func TestLinksCutAndRestoreThroughAdmin(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "eastus2") }))
	defer gw.Close()
	u, _ := linkedUp(t, gw)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	via := "http://" + u.Link("edge-to-eastus2").Addr().String()
	get := func() error {
		resp, err := client.Get(via)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "eastus2" {
			t.Fatalf("through the link: %q", b)
		}
		return nil
	}
	admin := func(action, token string) int {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", u.LinksAdmin()+"/links/edge-to-eastus2/"+action, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if err := get(); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	if code := admin("cut", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("cut with a wrong token: %d", code)
	}
	if code := admin("cut", "admin-0123456789abcdef"); code != 200 {
		t.Fatalf("cut: %d", code)
	}
	if err := get(); err == nil {
		t.Fatal("a request crossed a cut link")
	}
	if st := u.Link("edge-to-centralus").Status().State; st != "up" {
		t.Errorf("another link is %s", st)
	}
	if code := admin("restore", "admin-0123456789abcdef"); code != 200 {
		t.Fatalf("restore: %d", code)
	}
	if err := get(); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

func TestLinksDisabledChangesNothing(t *testing.T) {
	u, _ := New("t.yaml", Options{})
	u.Topology = &topology.Topology{}
	if err := u.startLinks(t.Context(), nil); err != nil || u.Links() != nil || u.LinksAdmin() != "" {
		t.Fatalf("links started without links.enabled: %v", err)
	}
	specs := []Spec{{Name: "edge", Args: []string{"edge", "-f", "a"}}}
	if got := u.withLinks(specs); got[0].Args[2] != "a" {
		t.Errorf("args changed: %v", got[0].Args)
	}
	u.closeLinks()
}

func TestReservedPorts(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "k", AdminToken: "a", ReplicationSecret: "r", Ports: topology.DefaultPorts})
	tp, err := topology.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	tp.Default()
	got := reservedPorts(tp)
	for _, p := range topology.DefaultPorts {
		if !got[fmt.Sprint(p)] {
			t.Errorf("port %d not reserved: %v", p, got)
		}
	}
	if len(got) != len(topology.DefaultPorts) {
		t.Errorf("reserved %v, want exactly the topology's %v", got, topology.DefaultPorts)
	}
}
