package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/topology"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "validate"},
		{[]string{"validate", "-h"}, 0, ""},
		{[]string{"help", "init"}, 0, "usage: understudy init"},
		{[]string{}, 2, "usage"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"validate", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"validate", "extra"}, 2, "unexpected arguments"},
		{[]string{"validate", "-f", "/nonexistent/topology.yaml"}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errs)
			}
			if !strings.Contains(out+errs, tt.want) {
				t.Errorf("output %q lacks %q", out+errs, tt.want)
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	_, out, _ := run(t, "help")
	for name := range commands {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +\S`).MatchString(out) {
			t.Errorf("help does not list %q with a description:\n%s", name, out)
		}
	}
}

func TestInitWritesAValidTopology(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := run(t, "init", "--dir", dir)
	if code != 0 {
		t.Fatalf("init exit %d: %s", code, errs)
	}
	key := regexp.MustCompile(`(?m)^key=(\S+)$`).FindStringSubmatch(out)
	if key == nil {
		t.Fatalf("init printed no key= line:\n%s", out)
	}
	tp, err := topology.Load(filepath.Join(dir, "topology.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if tp.Keys[0].Key.Value() != key[1] {
		t.Errorf("printed key %q is not the topology's key", key[1])
	}
	defs, err := agents.LoadDir(tp.Path(tp.Agents.Dir), []string{tp.Deployments[0].Name})
	if err != nil || len(defs) != 1 {
		t.Errorf("example agent: %v, %v", defs, err)
	}
	// A second init refuses to overwrite.
	if code, _, errs := run(t, "init", "--dir", dir); code != 1 || !strings.Contains(errs, "--force") {
		t.Errorf("second init: exit %d, %q", code, errs)
	}
	code, out, errs = run(t, "validate", "-f", filepath.Join(dir, "topology.yaml"))
	if code != 0 || !strings.Contains(out, "worst-case detection 2.5s") || strings.Contains(out, key[1]) {
		t.Errorf("validate: exit %d\n%s%s", code, out, errs)
	}
}
