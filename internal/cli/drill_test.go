package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

func TestDrillDemoCopy(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "adm-0123456789abcdef",
		ReplicationSecret: "rep-0123456789abcdef", Ports: topology.DefaultPorts})
	src = append(src, []byte("data_dir: /var/lib/understudy\n")...)
	src = bytes.Replace(src, []byte("    priority: 1\n"), []byte("    priority: 1\n    url: http://gw.example:7081\n"), 1)
	out, err := demoCopy(src, "/home/me/dr")
	if err != nil {
		t.Fatal(err)
	}
	if out, err = drillDemoSettings(out); err != nil {
		t.Fatal(err)
	}
	tp, err := topology.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tp.Dir = "/tmp/x"
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := []string{tp.Edge.Listen, tp.Controller.Listen, tp.Regions[0].Listen, tp.Regions[1].Listen,
		tp.Regions[0].Backends["gpt-4.1-mini"][0].URL, tp.Regions[1].Backends["gpt-4.1-mini"][0].URL, tp.Regions[0].URL}
	want := []string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "http://127.0.0.1:0", "http://127.0.0.1:0", "http://127.0.0.1:0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("addresses %v, want %v", got, want)
	}
	if !tp.Links.Enabled || tp.Controller.Cooldown.String() != "1s" || tp.DataDir != "data" || tp.Agents.Dir != "/home/me/dr/agents" {
		t.Errorf("links %v cooldown %s data_dir %q agents %q", tp.Links.Enabled, tp.Controller.Cooldown, tp.DataDir, tp.Agents.Dir)
	}
	if tp.Keys[0].Key.Value() != "sk-0123456789abcdef" || tp.Targets.RTO.String() != "10s" {
		t.Errorf("the copy lost keys or targets:\n%s", out)
	}
}

func TestDrillUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drill"}, "--scenario is required"},
		{[]string{"drill", "--scenario", "meteor"}, `--scenario "meteor"`},
		{[]string{"drill", "--scenario", "region-outage", "--duration", "1s"}, "between 5s and 1h"},
	} {
		var stderr bytes.Buffer
		code := Main(t.Context(), &Env{Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }}, tc.args)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
