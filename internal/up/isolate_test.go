package up

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/netns"
	"github.com/understudy/understudy/internal/topology"
)

func TestIsolateText(t *testing.T) {
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
		ReplicationSecret: "repl-0123456789abcdef", Ports: topology.DefaultPorts})
	src = bytes.Replace(src, []byte("listen: 127.0.0.1:7082"), []byte("listen: 127.0.0.1:7082\n    url: https://gw.example:443"), 1)
	out, err := isolateText(src, map[string]string{"eastus2": "10.78.3.2", "centralus": "10.78.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := topology.Parse(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tp.Default()
	if err := tp.Validate(); err != nil {
		t.Fatalf("rewritten topology invalid: %v", err)
	}
	got := []string{tp.Region("eastus2").Listen, tp.Region("eastus2").URL, tp.Region("eastus2").Backends["gpt-4.1-mini"][0].URL,
		tp.Region("centralus").Listen, tp.Region("centralus").URL, tp.Region("centralus").Backends["gpt-4.1-mini"][0].URL,
		tp.Edge.Listen, tp.Controller.Listen}
	want := []string{"10.78.3.2:7081", "http://10.78.3.2:7081", "http://10.78.3.2:7101",
		"10.78.4.2:7082", "https://10.78.4.2:7082", "http://10.78.4.2:7102",
		"127.0.0.1:7080", "127.0.0.1:7070"}
	if !slices.Equal(got, want) {
		t.Errorf("addresses\n%q\nwant\n%q", got, want)
	}
	if !tp.Admin.AllowRemote {
		t.Error("admin.allow_remote not set: the regions' admin APIs would refuse the host end of their veth")
	}
	if tp.Admin.Token.Value() != "admin-0123456789abcdef" {
		t.Errorf("admin token %q lost", tp.Admin.Token.Value())
	}
}

func TestNetnsBlockers(t *testing.T) {
	base := func() *topology.Topology {
		src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
			ReplicationSecret: "repl-0123456789abcdef", Ports: topology.DefaultPorts})
		tp, err := topology.Parse(bytes.NewReader(append(src, "links: {enabled: true, isolation: netns}\n"...)))
		if err != nil {
			t.Fatal(err)
		}
		tp.Default()
		return tp
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("the example with netns: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*topology.Topology)
		want   string
	}{
		{"links off", func(tp *topology.Topology) { tp.Links.Enabled = false }, "needs links.enabled"},
		{"hot-cold", func(tp *topology.Topology) { tp.Pattern = topology.HotCold }, "hot-cold"},
		{"real backend", func(tp *topology.Topology) {
			tp.Regions[1].Backends["gpt-4.1-mini"][0].Kind = topology.KindOpenAI
		}, "region centralus: backend"},
		{"postgres", func(tp *topology.Topology) { tp.Regions[0].Store.Driver = "postgres" }, "store postgres"},
		{"remote edge", func(tp *topology.Topology) { tp.Edge.Listen = "0.0.0.0:7080" }, "edge.listen 0.0.0.0:7080 is not on loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := base()
			tc.change(tp)
			if got := strings.Join(tp.NetnsBlockers(), "; "); !strings.Contains(got, tc.want) {
				t.Errorf("blockers %q, want %q", got, tc.want)
			}
			if err := tp.Validate(); err == nil || !strings.Contains(err.Error(), "links.isolation") {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

func TestChooseIsolationWithoutNamespaces(t *testing.T) {
	unavailable := func(context.Context) error { return errors.New("not root (uid 1000)") }
	for _, tc := range []struct {
		isolation, pattern string
		method, reason     string
		err                string
	}{
		{isolation: "proxy", method: MethodLinkProxy, reason: "links.isolation is proxy"},
		{isolation: "auto", method: MethodLinkProxy, reason: "not root (uid 1000)"},
		{isolation: "auto", pattern: "hot-cold", method: MethodLinkProxy, reason: "hot-cold"},
		{isolation: "netns", err: "links.isolation netns: not root (uid 1000)"},
	} {
		t.Run(tc.isolation+tc.pattern, func(t *testing.T) {
			src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
				ReplicationSecret: "repl-0123456789abcdef", Ports: topology.DefaultPorts})
			tp, err := topology.Parse(bytes.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			tp.Default()
			tp.Links.Enabled, tp.Links.Isolation = true, tc.isolation
			if tc.pattern != "" {
				tp.Pattern = topology.Pattern(tc.pattern)
			}
			u, _ := New("t.yaml", Options{NetnsAvailable: unavailable})
			u.Topology = tp
			out, err := u.chooseIsolation(t.Context(), src)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, src) || u.Isolation() != tc.method || !strings.Contains(u.iso.reason, tc.reason) || u.Namespaces() != nil {
				t.Errorf("method %q reason %q namespaces %v, text changed %v", u.Isolation(), u.iso.reason, u.Namespaces(), !bytes.Equal(out, src))
			}
		})
	}
	// Without links there is nothing to isolate with.
	u, _ := New("t.yaml", Options{NetnsAvailable: unavailable})
	u.Topology = &topology.Topology{}
	if _, err := u.chooseIsolation(t.Context(), nil); err != nil || u.Isolation() != "" {
		t.Errorf("links off: %v, method %q", err, u.Isolation())
	}
	if _, err := u.Partition(t.Context(), "eastus2", true); err == nil || !strings.Contains(err.Error(), "links.enabled") {
		t.Errorf("partition without links: %v", err)
	}
}

func TestPartitionCutsLinkProxies(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "eastus2") }))
	defer gw.Close()
	u, _ := linkedUp(t, gw)
	u.iso = &isolation{method: MethodLinkProxy}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() error {
		resp, err := client.Get("http://" + u.Link("edge-to-eastus2").Addr().String())
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(); err != nil {
		t.Fatalf("before: %v", err)
	}
	res, err := u.Partition(t.Context(), "eastus2", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"edge-to-eastus2", "controller-to-eastus2", "eastus2-to-controller", "eastus2-to-centralus", "centralus-to-eastus2"}
	if res.Method != MethodLinkProxy || !res.Partitioned || !slices.Equal(res.Links, want) || !strings.HasPrefix(res.Detail, "cut links edge-to-eastus2") {
		t.Errorf("result %+v", res)
	}
	for _, l := range u.Links() {
		if st := u.Link(l.Name).Status().State; (st == "cut") != slices.Contains(want, l.Name) {
			t.Errorf("link %s is %s", l.Name, st)
		}
	}
	if err := get(); err == nil {
		t.Error("a request reached the partitioned region")
	}
	if res, err = u.Partition(t.Context(), "eastus2", false); err != nil || res.Partitioned || !strings.HasPrefix(res.Detail, "restored links") {
		t.Fatalf("heal: %+v %v", res, err)
	}
	if err := get(); err != nil {
		t.Errorf("after heal: %v", err)
	}
	if _, err := u.Partition(t.Context(), "westus", true); err == nil {
		t.Error("partitioned a region that does not exist")
	}
}

// serveChild plays any component for TestUpInNamespaces: it listens where
// the component would, answers GET / with its kind, region and network
// namespace, and GET /get?url=U with the status of a GET of U.
func serveChild(args []string) {
	kind, listen, region := args[0], "", ""
	var file string
	for i := 1; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			listen = args[i+1]
		case "-f":
			file = args[i+1]
		case "--region":
			region = args[i+1]
		}
	}
	if file != "" {
		tp, err := topology.Load(file, os.Getenv)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		switch kind {
		case "gateway":
			listen = tp.Region(region).Listen
		case "edge":
			listen = tp.Edge.Listen
		case "controller":
			listen = tp.Controller.Listen
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ns, _ := os.Readlink("/proc/self/ns/net")
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.URL.Query().Get("url"); u != "" {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(u)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			resp.Body.Close()
			fmt.Fprint(w, resp.Status)
			return
		}
		fmt.Fprintf(w, "%s %s %s", kind, region, ns)
	}))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Printf("ready component=%s region=%s url=http://%s\n", kind, region, ln.Addr())
	<-sig
	os.Exit(0)
}

// requireRoot skips a test that needs network namespaces, unless CI=true
// (CI runs as root, and there the test must run).
func requireRoot(t *testing.T) {
	t.Helper()
	err := netns.Available(t.Context(), fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid()))
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network namespaces are required under CI: %v", err)
	}
	t.Skipf("network namespaces unavailable: %v", err)
}

func TestUpInNamespaces(t *testing.T) {
	requireRoot(t)
	// A namespace a killed earlier run left behind is swept.
	dead := exec.Command(os.Args[0])
	dead.Env = append(os.Environ(), "UP_TEST_CHILD=fail")
	dead.Run()
	stale := fmt.Sprintf("%s%d-eastus2", nsPrefix, dead.Process.Pid)
	if err := netns.Add(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(context.Background(), stale) })

	dir := t.TempDir()
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-0123456789abcdef", AdminToken: "admin-0123456789abcdef",
		ReplicationSecret: "repl-0123456789abcdef"})
	src = append(src, "links: {enabled: true}\n"...)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	bin, _ := child(t, "serve")
	var out bytes.Buffer
	u, _ := New(path, Options{Binary: bin, Stdout: &out, ReadyTimeout: 10 * time.Second, Grace: 5 * time.Second})
	if err := u.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			u.Close(context.Background())
		}
	})
	list := func() []string {
		names, err := netns.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if slices.Contains(list(), stale) {
		t.Errorf("stale namespace %s not swept", stale)
	}
	nss := u.Namespaces()
	if u.Isolation() != MethodNetns || len(nss) != 2 || !strings.Contains(out.String(), "isolation method=netns eastus2="+nss[0].Netns) {
		t.Fatalf("isolation %q, namespaces %+v, output:\n%s", u.Isolation(), nss, out.String())
	}
	for _, n := range nss {
		if !slices.Contains(list(), n.Netns) || !strings.HasPrefix(n.Addr, "10.78.") || n.Netns != fmt.Sprintf("us-%d-%s", os.Getpid(), n.Region) {
			t.Errorf("namespace %+v", n)
		}
	}

	// The regions' components run in their namespaces, the others here.
	self, _ := os.Readlink("/proc/self/ns/net")
	for _, c := range u.Components() {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if (ns != self) != (c.Region != "") {
			t.Errorf("%s (pid %d) runs in %s, this test in %s", c.Name, c.Pid, ns, self)
		}
	}

	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(u string) (string, error) {
		resp, err := client.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), nil
	}
	via := func(link string) string { return "http://" + u.Link(link).Addr().String() }
	if got, err := get(via("edge-to-eastus2")); err != nil || !strings.HasPrefix(got, "gateway eastus2 net:") || strings.HasSuffix(got, self) {
		t.Fatalf("through edge-to-eastus2: %q %v", got, err)
	}
	// From inside eastus2, the controller through eastus2-to-controller,
	// which listens on the host end of eastus2's veth.
	east := "http://" + u.Topology.Region("eastus2").Listen
	if l := u.Link("eastus2-to-controller").Addr().String(); !strings.HasPrefix(l, nss[0].Host+":") {
		t.Errorf("eastus2-to-controller listens on %s, want the host end %s", l, nss[0].Host)
	}
	if got, err := get(east + "/?url=" + via("eastus2-to-controller")); err != nil || got != "200 OK" {
		t.Errorf("eastus2 to the controller: %q %v", got, err)
	}

	res, err := u.Partition(t.Context(), "eastus2", true)
	if err != nil || res.Method != MethodNetns || !strings.Contains(res.Detail, nss[0].Netns) {
		t.Fatalf("partition: %+v %v", res, err)
	}
	if got, err := get(via("edge-to-eastus2")); err == nil {
		t.Errorf("the partitioned region answered: %q", got)
	}
	if got, err := get(east); err == nil {
		t.Errorf("the partitioned region answered directly: %q", got)
	}
	if _, err := get(via("edge-to-centralus")); err != nil {
		t.Errorf("centralus during eastus2's partition: %v", err)
	}
	if res, err = u.Partition(t.Context(), "eastus2", false); err != nil || res.Partitioned {
		t.Fatalf("heal: %+v %v", res, err)
	}
	// A healed link answers once its neighbour entry resolves again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := get(via("edge-to-eastus2"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eastus2 unreachable 10s after the heal: %v", err)
		}
	}

	closed = true
	if err := u.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, n := range nss {
		if slices.Contains(list(), n.Netns) {
			t.Errorf("namespace %s left after Close", n.Netns)
		}
		if _, err := net.InterfaceByName(n.HostDev); err == nil {
			t.Errorf("veth %s left after Close", n.HostDev)
		}
	}
}
