package up

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// The test binary doubles as a child process: UP_TEST_CHILD selects how it behaves.
func TestMain(m *testing.M) {
	switch os.Getenv("UP_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "ready":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("ready component=fake url=http://127.0.0.1:1")
		<-sig
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "listen tcp 127.0.0.1:1: bind: permission denied")
		os.Exit(3)
	case "hang":
		select {}
	case "serve":
		serveChild(os.Args[1:])
	case "pid":
		pidChild()
	}
}

func TestResolveNeedsFreshPorts(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "k", AdminToken: "a", ReplicationSecret: "r"})
	_, err := Resolve(src, "/srv/dr", func() (int, error) { return 20001, nil })
	if err == nil || !strings.Contains(err.Error(), "not picked already") {
		t.Fatalf("a picker that offers one port for every address: %v", err)
	}
}

func TestResolvePicksPortsAndKeepsSecrets(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{
		Key: "${UNDERSTUDY_KEY}", AdminToken: "admin-0123456789abcdef", ReplicationSecret: "repl-0123456789abcdef",
	}) // all ports zero
	// The kernel may offer a free port twice: each port comes back twice
	// here, and the second offer is refused.
	next, calls := 20000, 0
	out, err := Resolve(src, "/srv/dr", func() (int, error) {
		if calls++; calls%2 == 1 {
			next++
		}
		return next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := topology.Parse(strings.NewReader(string(out)))
	if err != nil {
		t.Fatalf("resolved topology does not parse: %v\n%s", err, out)
	}
	tp.Dir = "/elsewhere"
	if err := tp.ExpandSecrets(func(string) string { return "sk-from-env-0123456789" }); err != nil {
		t.Fatal(err)
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatalf("resolved topology invalid: %v", err)
	}
	// Edge and controller come first in the file's order of sections we fix;
	// every zero port got a distinct picked port.
	got := []string{tp.Edge.Listen, tp.Controller.Listen, tp.Regions[0].Listen, tp.Regions[1].Listen,
		tp.Regions[0].Backends["gpt-4.1-mini"][0].URL, tp.Regions[1].Backends["gpt-4.1-mini"][0].URL}
	want := []string{"127.0.0.1:20001", "127.0.0.1:20002", "127.0.0.1:20003", "127.0.0.1:20005",
		"http://127.0.0.1:20004", "http://127.0.0.1:20006"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("addresses = %v, want %v", got, want)
	}
	if tp.Region("eastus2").URL != "http://127.0.0.1:20003" {
		t.Errorf("region URL = %q", tp.Region("eastus2").URL)
	}
	if !strings.Contains(string(out), "${UNDERSTUDY_KEY}") || !strings.Contains(string(out), "admin-0123456789abcdef") {
		t.Errorf("secrets not kept as written:\n%s", out)
	}
	if tp.DataDir != "/srv/dr/data" || tp.Agents.Dir != "/srv/dr/agents" {
		t.Errorf("paths not absolute: data_dir %q agents %q", tp.DataDir, tp.Agents.Dir)
	}
}

func TestResolveLeavesFixedPorts(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "k", AdminToken: "a", ReplicationSecret: "r", Ports: topology.DefaultPorts})
	out, err := Resolve(src, "/d", func() (int, error) { t.Fatal("picked a port"); return 0, nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "listen: 127.0.0.1:7081") {
		t.Errorf("fixed port rewritten:\n%s", out)
	}
}

func child(t *testing.T, mode string) (string, Spec) {
	t.Helper()
	t.Setenv("UP_TEST_CHILD", mode)
	return os.Args[0], Spec{Name: "fake/" + mode, Kind: "fake"}
}

func TestStartWaitsForReadyLineAndStops(t *testing.T) {
	bin, spec := child(t, "ready")
	log := filepath.Join(t.TempDir(), "fake.log")
	p, err := start(context.Background(), bin, spec, log, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != "http://127.0.0.1:1" || p.Ready["component"] != "fake" {
		t.Errorf("ready line parsed as %v", p.Ready)
	}
	p.stop(10 * time.Second)
	if got := exitErr(p.Err()); got != "exit status 0" {
		t.Errorf("child ended with %s, want a clean exit on SIGTERM", got)
	}
}

func TestStartReportsAChildThatDies(t *testing.T) {
	bin, spec := child(t, "fail")
	_, err := start(context.Background(), bin, spec, filepath.Join(t.TempDir(), "fake.log"), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "bind: permission denied") {
		t.Fatalf("err = %v, want the exit and the tail of its log", err)
	}
}

func TestStartGivesUpOnAChildThatNeverGetsReady(t *testing.T) {
	bin, spec := child(t, "hang")
	_, err := start(context.Background(), bin, spec, filepath.Join(t.TempDir(), "fake.log"), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready after 300ms") {
		t.Fatalf("err = %v", err)
	}
}

func TestLockDirRefusesASecondRun(t *testing.T) {
	dir := t.TempDir()
	f, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := lockDir(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second lock: %v", err)
	}
}
