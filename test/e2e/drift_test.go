package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// driftTopology: two regions on ports `up` picks, each with a modelsim that
// advertises quota headers (600 requests and 100k tokens a minute, which is
// the deployment's capacity of 100), sync replication with RPO 0.
const driftTopology = `version: 1
name: e2e-drift
pattern: hot-warm
targets: {rto: 10s, rpo: 0s}
keys: [{name: e2e, key: %[1]s}]
admin: {token: %[2]s}
deployments: [{name: %[3]s, version: "2025-04-14", sku: GlobalStandard, capacity: 100}]
regions:
  - name: eastus2
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0", sim: {rpm: 600, tpm: 100000}}]}
  - name: centralus
    listen: 127.0.0.1:0
    backends: {%[3]s: [{kind: sim, url: "http://127.0.0.1:0", sim: {rpm: 600, tpm: 100000}}]}
replication: {mode: sync, secret: rep-e2e-0123456789abcdef, sync_timeout: 2s}
gateway: {access_log: false}
edge: {listen: 127.0.0.1:0}
controller: {listen: 127.0.0.1:0, lease_ttl: 2s}
`

// driftRun is one `understudy drift` run.
type driftRun struct {
	code           int
	stdout, stderr string
}

func (r driftRun) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func runDrift(t *testing.T, args ...string) driftRun {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"drift"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	r := driftRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run drift: %v", err)
	}
	return r
}

// TestDriftVersionOnStandby: with both regions up and matching the file,
// drift exits 0; when the standby's model server reports another version,
// drift exits 1 naming the region, deployment, field, expected and actual
// version; once the fault is cleared it exits 0 with every region READY.
func TestDriftVersionOnStandby(t *testing.T) {
	begin := time.Now()
	binary(t)
	t.Logf("binary built in %s", time.Since(begin).Round(time.Millisecond))
	dir, st := startUp(t, fmt.Sprintf(driftTopology, e2eKey, e2eAdmin, e2eModel), 6)
	killComponentsOnExit(t, st)
	t.Logf("up in %s", time.Since(begin).Round(time.Millisecond))
	topo := filepath.Join(dir, "topology.yaml") // the file as written, ports 0: drift reads them from up.json

	// One answer through each region gives the quota check numbers.
	for _, region := range []string{"eastus2", "centralus"} {
		_, url, _ := st.component("gateway/" + region)
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`, e2eModel)
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chat through %s: %d", region, resp.StatusCode)
		}
	}

	// READY once replication is connected and the controller applied the
	// agent.
	var last driftRun
	waitFor(t, 30*time.Second, "drift to report every region READY", func() bool {
		last = runDrift(t, "-f", topo)
		return last.code == 0 && strings.Contains(last.stdout, "verdict: READY")
	})
	t.Logf("READY after %s", time.Since(begin).Round(time.Millisecond))
	for _, want := range []string{"eastus2    primary  READY", "centralus  standby  READY", "quota         pass     pass"} {
		if !strings.Contains(last.stdout, want) {
			t.Errorf("READY output lacks %q\n%s", want, last)
		}
	}

	_, sim, _ := st.component("modelsim/centralus/" + e2eModel + "-1")
	setFaults(t, sim, http.MethodPut, `{"version":"2024-01-01"}`)
	r := runDrift(t, "-f", topo)
	if r.code != 1 {
		t.Fatalf("drift with a drifted standby: %s", r)
	}
	for _, want := range []string{
		"centralus  standby  NOT_READY",
		"NotEqual  centralus  model  " + e2eModel + "/" + e2eModel + "-1  version  2025-04-14  2024-01-01",
		"verdict: NOT_READY: centralus",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q\n%s", want, r)
		}
	}
	if !strings.Contains(r.stderr, "centralus is NOT_READY") {
		t.Errorf("stderr: %s", r.stderr)
	}

	r = runDrift(t, "-f", topo, "--json")
	var rep struct {
		Regions []struct {
			Region, Verdict string
		}
		Findings []struct {
			Kind, Check, Region, Deployment, Field, Expected, Actual string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	if len(rep.Findings) != 1 || rep.Findings[0] != (struct {
		Kind, Check, Region, Deployment, Field, Expected, Actual string
	}{"NotEqual", "model", "centralus", e2eModel, "version", "2025-04-14", "2024-01-01"}) {
		t.Errorf("findings = %+v", rep.Findings)
	}

	setFaults(t, sim, http.MethodDelete, "")
	r = runDrift(t, "-f", topo)
	if r.code != 0 || !strings.Contains(r.stdout, "centralus  standby  READY") || !strings.Contains(r.stdout, "verdict: READY") {
		t.Errorf("drift after the fix: %s", r)
	}
}

// setFaults sets (PUT) or clears (DELETE) a modelsim's faults with the
// admin token `up` passed it.
func setFaults(t *testing.T, sim, method, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, sim+"/admin/faults", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s/admin/faults: %d", method, sim, resp.StatusCode)
	}
}

// killComponentsOnExit kills the components `up` started (by the pids in
// up.json, checking each is still our binary) before `up` itself is
// killed, so none outlives the test.
func killComponentsOnExit(t *testing.T, st upState) {
	bin := binary(t)
	t.Cleanup(func() {
		for _, c := range st.Components {
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.Pid))
			if err == nil && strings.TrimSuffix(exe, " (deleted)") == bin {
				syscall.Kill(c.Pid, syscall.SIGKILL)
			}
		}
	})
}
