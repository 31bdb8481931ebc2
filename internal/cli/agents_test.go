package cli

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/store/sqlite"
	"github.com/understudy/understudy/internal/topology"
)

const testAdminToken = "admin-0123456789abcdef"

// agentsRegion serves a real agents admin API (sqlite store, primary)
// behind the admin token, and writes a topology whose region eastus2 is it.
func agentsRegion(t *testing.T) (topo string, dir string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "r.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Promote(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	svc := agents.New(agents.Options{Store: st, Deployments: []string{"gpt-4.1-mini"}})
	admin := svc.AdminHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testAdminToken {
			http.Error(w, `{"error":{"message":"bad admin token","type":"invalid_request_error","param":null,"code":null}}`, http.StatusUnauthorized)
			return
		}
		admin.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)

	dir = t.TempDir()
	yaml := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-test-0123456789abcdef", AdminToken: testAdminToken,
		ReplicationSecret: "repl-0123456789abcdef", Ports: [6]int{0, 0, p, 0, 0, 0}})
	topo = filepath.Join(dir, "topology.yaml")
	write(t, topo, string(yaml))
	write(t, filepath.Join(dir, "agents", "support-agent.yaml"), exampleAgent)
	return topo, dir
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAgentsListDiffApply(t *testing.T) {
	topo, dir := agentsRegion(t)
	steps := []struct {
		name string
		edit func()
		args []string
		code int
		want []string
	}{
		{"list", nil, []string{"agents", "list", "-f", topo}, 0, []string{"support-agent", "gpt-4.1-mini", "support-agent.yaml"}},
		{"flags before the subcommand", nil, []string{"agents", "-f", topo, "list"}, 0, []string{"support-agent"}},
		{"diff before apply", nil, []string{"agents", "diff", "-f", topo, "--region", "eastus2"}, 1, []string{"Added support-agent", "1 differences"}},
		{"apply", nil, []string{"agents", "apply", "-f", topo, "--region", "eastus2"}, 0, []string{"applied support-agent version"}},
		{"apply again", nil, []string{"agents", "apply", "-f", topo, "--region", "eastus2"}, 0, []string{"unchanged support-agent"}},
		{"diff after apply", nil, []string{"agents", "diff", "-f", topo, "--region", "eastus2"}, 0, []string{"matches the 1 definitions"}},
		{"edit without a new version", func() {
			write(t, filepath.Join(dir, "agents", "support-agent.yaml"), strings.Replace(exampleAgent, "concise", "verbose", 1))
		}, []string{"agents", "diff", "-f", topo, "--region", "eastus2"}, 1, []string{"NotEqual support-agent"}},
		{"apply refuses the same version", nil, []string{"agents", "apply", "-f", topo, "--region", "eastus2"}, 1, []string{"change metadata.version"}},
		{"a file removed", func() {
			os.Remove(filepath.Join(dir, "agents", "support-agent.yaml"))
			write(t, filepath.Join(dir, "agents", "other.json"), `{"name":"other","model":"gpt-4.1-mini","metadata":{"version":"1"}}`)
		}, []string{"agents", "diff", "-f", topo, "--region", "eastus2"}, 1, []string{"Added other", "Removed support-agent"}},
		{"invalid file", func() {
			write(t, filepath.Join(dir, "agents", "bad.yaml"), "name: bad\nmodel: gpt-5\nmetadata: {version: \"1\"}\n")
		}, []string{"agents", "list", "-f", topo}, 1, []string{"bad.yaml: model: unknown deployment"}},
		{"no region", nil, []string{"agents", "diff", "-f", topo}, 2, []string{"needs --region"}},
		{"unknown region", nil, []string{"agents", "apply", "-f", topo, "--region", "mars"}, 2, []string{"not in the topology"}},
		{"no subcommand", nil, []string{"agents"}, 2, []string{"list, diff or apply"}},
		{"unknown subcommand", nil, []string{"agents", "remove", "-f", topo}, 2, []string{"unknown subcommand"}},
	}
	for _, s := range steps {
		if s.edit != nil {
			s.edit()
		}
		code, out, errs := run(t, s.args...)
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d\n%s%s", s.name, code, s.code, out, errs)
		}
		for _, w := range s.want {
			if !strings.Contains(out+errs, w) {
				t.Errorf("%s: output lacks %q:\n%s%s", s.name, w, out, errs)
			}
		}
	}
}
