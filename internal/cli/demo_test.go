package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

func TestDemoMisuse(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"demo", "extra"}, "unexpected arguments"},
		{[]string{"demo", "--chat-rate", "51"}, "--chat-rate 51"},
		{[]string{"demo", "--agents", "-1"}, "--agents -1"},
		{[]string{"demo", "--load-for", "0s"}, "--load-for 0s"},
		{[]string{"demo", "--load-for", "25h"}, "at most 24h"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != 2 || out != "" || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, tt.want)
			}
		})
	}
}

func TestSetYAML(t *testing.T) {
	src := []byte("# top\nname: x # the name\ncontroller:\n  window: 5s\nlist: [1, 2]\n")
	tests := []struct {
		path    []string
		value   string
		want    string
		wantErr string
	}{
		{[]string{"controller", "cooldown"}, "30s", "controller:\n  window: 5s\n  cooldown: 30s\n", ""},
		{[]string{"controller", "window"}, "1s", "controller:\n  window: 1s\n", ""},
		{[]string{"name"}, "y", "name: y # the name\n", ""},
		{[]string{"edge", "listen"}, "x", "", `no "edge"`},
		{[]string{"list", "x"}, "1", "", `"list" is not a mapping`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.path, "."), func(t *testing.T) {
			out, err := setYAML(src, tt.path, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(string(out), tt.want) || !strings.HasPrefix(string(out), "# top\n") {
				t.Errorf("setYAML = %q, %v; want it to contain %q and keep comments", out, err, tt.want)
			}
		})
	}
}

// TestDemoTopology: the demo's topology (the example with every port 0
// and a short cooldown) is valid.
func TestDemoTopology(t *testing.T) {
	src, err := setYAML(topology.ExampleYAML(topology.ExampleOptions{Key: "sk-x-0123456789abcdef",
		AdminToken: "adm-0123456789abcdef", ReplicationSecret: "rep-0123456789abcdef"}), []string{"controller", "cooldown"}, "30s")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.ExpandSecrets(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	topo.Default()
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	if topo.Controller.Cooldown.D().String() != "30s" || topo.Edge.Listen != "127.0.0.1:0" {
		t.Errorf("cooldown %s, edge listen %s", topo.Controller.Cooldown.D(), topo.Edge.Listen)
	}
}
