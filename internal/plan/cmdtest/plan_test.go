// Package cmdtest runs the `understudy plan` command in-process. It is a
// separate package so the plan package's own tests do not depend on every
// component the command registry links in.
package cmdtest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/cli"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = cli.Main(context.Background(), env, append([]string{"plan"}, args...))
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMisuseNamesTheFlag(t *testing.T) {
	ok := []string{"--rto", "5m", "--rpo", "0", "--budget", "medium"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "--rto is required"},
		{"no rpo", []string{"--rto", "5m", "--budget", "low"}, "--rpo is required"},
		{"no budget", []string{"--rto", "5m", "--rpo", "0"}, "--budget is required"},
		{"bad duration", []string{"--rto", "5x", "--rpo", "0", "--budget", "low"}, "flag -rto"},
		{"bad rpo", []string{"--rto", "5m", "--rpo", "soon", "--budget", "low"}, "flag -rpo"},
		{"zero rto", []string{"--rto", "0", "--rpo", "0", "--budget", "low"}, "--rto: must be more than 0"},
		{"negative rpo", []string{"--rto", "5m", "--rpo", "-1s", "--budget", "low"}, "--rpo: must not be negative"},
		{"unknown budget", []string{"--rto", "5m", "--rpo", "0", "--budget", "cheap"}, `invalid value "cheap" for flag -budget: want low, medium or high`},
		{"unknown residency", append(ok, "--residency", "moon"), `invalid value "moon" for flag -residency`},
		{"one region", append(ok, "--regions", "eastus2"), "--regions: want two regions"},
		{"same region twice", append(ok, "--regions", "eastus2,eastus2"), "--regions: the two regions must differ"},
		{"model share zero", append(ok, "--model-share", "0"), "--model-share"},
		{"model share above one", append(ok, "--model-share", "2"), "--model-share"},
		{"extra argument", append(ok, "now"), "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (misuse)", code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("misuse printed a plan: %q", stdout)
			}
		})
	}
}

// The flags map onto the same inputs the golden files were made from.
func TestReportMatchesGolden(t *testing.T) {
	tests := []struct {
		args   []string
		golden string
	}{
		{[]string{"--rto", "5m", "--rpo", "0", "--budget", "medium", "--stateful-agents", "--residency", "datazone"},
			"hot-warm-stateful-datazone.report.golden"},
		{[]string{"--rto", "5s", "--rpo", "0", "--budget", "low", "--stateful-agents"},
			"hot-hot-low-budget-stateful.report.golden"},
		{[]string{"--rto", "8h", "--rpo", "1h", "--budget", "low", "--residency", "region",
			"--regions", "westeurope,northeurope", "--name", "claims-bot"}, "hot-cold-region.report.golden"},
	}
	for _, tc := range tests {
		code, stdout, stderr := run(tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr)
		}
		if want := golden(t, tc.golden); stdout != want {
			t.Errorf("%v: stdout differs from %s:\n%s", tc.args, tc.golden, stdout)
		}
	}
}

func TestOutWritesDesignAndTopology(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "design")
	code, stdout, stderr := run("--rto", "5m", "--rpo", "0", "--budget", "medium", "--stateful-agents",
		"--residency", "datazone", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for file, g := range map[string]string{
		"DESIGN.md":     "hot-warm-stateful-datazone.design.golden",
		"topology.yaml": "hot-warm-stateful-datazone.topology.golden",
	} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != golden(t, g) {
			t.Errorf("%s differs from %s", file, g)
		}
		if !strings.Contains(stdout, "wrote "+filepath.Join(dir, file)) {
			t.Errorf("stdout does not report writing %s", file)
		}
	}
}
