package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// controlCall posts to up's control API.
func controlCall(t *testing.T, control, path string) {
	t.Helper()
	req, _ := http.NewRequest("POST", control+path, nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("control %s: %s", path, resp.Status)
	}
}

type runRecord struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Steps  []struct {
		Name    string    `json:"name"`
		Status  string    `json:"status"`
		Started time.Time `json:"started"`
		Ended   time.Time `json:"ended"`
	} `json:"steps"`
}

// TestControllerResumesRunbookAfterSIGKILL kills the controller while the
// failover runbook waits out the old primary's lease, starts it again, and
// checks the same run resumes at that step and completes, once.
func TestControllerResumesRunbookAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole topology")
	}
	// A 4 s lease gives the fence step a window to kill the controller in.
	topo := strings.Replace(fmt.Sprintf(failoverTopology, e2eKey, e2eAdmin, e2eModel), "lease_ttl: 2s", "lease_ttl: 4s", 1)
	_, st := startUp(t, topo, 6)
	_, ctl, _ := st.component("controller")
	var up struct {
		Control string `json:"control"`
	}
	waitFor(t, 20*time.Second, "a writable primary", func() bool {
		s, err := controllerStatus(t, ctl)
		return err == nil && s.Regions["eastus2"].Readiness.Writable && s.Regions["centralus"].Readiness.Role == "standby"
	})
	data := readUpJSON(t, st)
	json.Unmarshal(data, &up)

	for _, name := range []string{"gateway/eastus2", "modelsim/eastus2/gpt-4.1-mini-1"} {
		pid, _, _ := st.component(name)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var runID string
	waitFor(t, 40*time.Second, "the runbook to reach fence-old-primary", func() bool {
		var s struct {
			Active *runRecord `json:"active"`
		}
		req, _ := http.NewRequest("GET", ctl+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+e2eAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&s)
		if s.Active == nil {
			return false
		}
		for _, step := range s.Active.Steps {
			if step.Name == "fence-old-primary" && step.Status == "running" {
				runID = s.Active.ID
				return true
			}
		}
		return false
	})
	controlCall(t, up.Control, "/v1/components/controller/kill")
	killed := time.Now()
	controlCall(t, up.Control, "/v1/components/controller/start")

	var s ctlStatus
	waitFor(t, 30*time.Second, "the resumed runbook to complete", func() bool {
		var err error
		s, err = controllerStatus(t, ctl)
		return err == nil && s.Last != nil && s.Last.ID == runID && (s.Last.Status == "completed" || s.Last.Status == "failed")
	})
	if s.Last.Status != "completed" || s.Primary != "centralus" || s.Epoch != 2 {
		t.Fatalf("after resume: primary %s epoch %d, run %+v", s.Primary, s.Epoch, s.Last)
	}
	var runs struct {
		Data []runRecord `json:"data"`
	}
	req, _ := http.NewRequest("GET", ctl+"/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&runs)
	resp.Body.Close()
	if len(runs.Data) != 1 {
		t.Fatalf("%d runs journaled, want the one resumed run", len(runs.Data))
	}
	r := runs.Data[0]
	for _, step := range r.Steps {
		switch step.Name {
		case "detect", "start-region":
			if !step.Ended.Before(killed) {
				t.Errorf("step %s ran again after the restart (ended %s, kill %s)", step.Name, step.Ended, killed)
			}
		case "fence-old-primary", "promote", "validate":
			if step.Status != "done" || !step.Ended.After(killed) {
				t.Errorf("step %s: %s, ended %s (kill at %s)", step.Name, step.Status, step.Ended, killed)
			}
		}
	}
}
