package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCPUsPinsGatewayAndEdge runs a gateway and an edge from the built
// binary with gateway.cpus and edge.cpus set to one CPU this process may
// use, and reads every thread's allowed CPUs from /proc: all on that CPU,
// and the ready lines say so (GOMAXPROCS 1, the number of CPUs listed).
func TestCPUsPinsGatewayAndEdge(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !allowed.IsSet(cpu) {
		cpu++
	}
	dir := t.TempDir()
	topo := fmt.Sprintf(`version: 1
name: cpus
data_dir: %s
keys:
  - name: e2e
    key: %s
admin:
  token: %s
deployments:
  - name: %s
    version: "2025-04-14"
regions:
  - name: local
    listen: 127.0.0.1:%d
    backends:
      %s:
        - kind: openai
          url: http://127.0.0.1:9
gateway:
  cpus: [%d]
edge:
  listen: 127.0.0.1:%d
  cpus: [%d]
`, filepath.Join(dir, "data"), e2eKey, e2eAdmin, e2eModel, freePort(t), e2eModel, cpu, freePort(t), cpu)
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*proc{
		start(t, "gateway", "gateway", "-f", path, "--region", "local"),
		start(t, "edge", "edge", "-f", path),
	} {
		if p.ready["procs"] != "1" || p.ready["cpus"] != strconv.Itoa(cpu) {
			t.Errorf("%s ready line: procs=%q cpus=%q, want 1 and %d", p.name, p.ready["procs"], p.ready["cpus"], cpu)
		}
		p.mu.Lock()
		pid := p.cmd.Process.Pid
		p.mu.Unlock()
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
			if err != nil {
				continue // the thread exited meanwhile
			}
			for line := range strings.Lines(string(status)) {
				if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && strings.TrimSpace(list) != strconv.Itoa(cpu) {
					t.Errorf("%s thread %s may run on CPUs %s, want %d only", p.name, task.Name(), strings.TrimSpace(list), cpu)
				}
			}
		}
		if len(tasks) < 2 {
			t.Errorf("%s has %d threads; the check saw too few to mean anything", p.name, len(tasks))
		}
	}
}
