package up

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

func TestControlAPI(t *testing.T) {
	bin, _ := child(t, "ready")
	dir := t.TempDir()
	u, _ := New(filepath.Join(dir, "t.yaml"), Options{Binary: bin, Stdout: io.Discard, ReadyTimeout: 10 * time.Second, Grace: 5 * time.Second})
	u.Topology = &topology.Topology{DataDir: dir}
	for _, s := range []Spec{{Name: "modelsim/eastus2/m", Kind: "modelsim", Region: "eastus2"}, {Name: "gateway/eastus2", Kind: "gateway", Region: "eastus2"}, {Name: "edge", Kind: "edge"}} {
		p, err := start(context.Background(), bin, s, filepath.Join(dir, safeName(s.Name)+".log"), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		u.procs.add(p)
	}
	t.Cleanup(func() { u.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Wait(ctx)
	srv := httptest.NewServer(u.ControlHandler("admin-0123456789abcdef"))
	defer srv.Close()

	do := func(method, path, token string) (int, []ComponentStatus) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Data []ComponentStatus }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Data
	}
	running := func(cs []ComponentStatus) string {
		var s []string
		for _, c := range cs {
			if c.Running {
				s = append(s, c.Name)
			}
		}
		return strings.Join(s, ",")
	}
	if code, _ := do("GET", "/v1/components", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	_, cs := do("GET", "/v1/components", "admin-0123456789abcdef")
	if running(cs) != "modelsim/eastus2/m,gateway/eastus2,edge" {
		t.Fatalf("components: %+v", cs)
	}
	oldPid := cs[1].Pid
	if code, _ := do("POST", "/v1/regions/eastus2/down", "admin-0123456789abcdef"); code != 200 {
		t.Fatalf("down: %d", code)
	}
	<-u.procs.get("gateway/eastus2").Done()
	<-u.procs.get("modelsim/eastus2/m").Done()
	_, cs = do("GET", "/v1/components", "admin-0123456789abcdef")
	if running(cs) != "edge" || cs[1].Exit != "signal killed" {
		t.Fatalf("after region down: %+v", cs)
	}
	code, cs := do("POST", "/v1/regions/eastus2/up", "admin-0123456789abcdef")
	if code != 200 || running(cs) != "modelsim/eastus2/m,gateway/eastus2,edge" || cs[1].Pid == oldPid {
		t.Fatalf("after region up: %d %+v", code, cs)
	}
	if code, _ := do("POST", "/v1/components/nope/kill", "admin-0123456789abcdef"); code != http.StatusConflict {
		t.Errorf("unknown component: %d", code)
	}
}
