package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/understudy/understudy/internal/topology"
	"github.com/understudy/understudy/internal/up"
)

// System is a running topology as a drill reaches it: the resolved
// topology `up` wrote, and the URLs of its control API, components and
// link proxies from up.json.
type System struct {
	// Topology is the resolved topology (real ports) the components run.
	Topology *topology.Topology
	// State is up.json.
	State up.State
	// Token is the admin token.
	Token string
	// Key is the client API key the load uses (the topology's first).
	Key string

	client *http.Client
}

// Discover reads data_dir/up.json of the topology t (the file a user
// passes with -f) and loads the resolved topology it names.
func Discover(t *topology.Topology, getenv func(string) string) (*System, error) {
	path := filepath.Join(t.Path(t.DataDir), "up.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: start the topology with `understudy up -f ...` first, or use --demo", path)
	}
	if err != nil {
		return nil, err
	}
	var st up.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Pid > 0 && !alive(st.Pid) {
		return nil, fmt.Errorf("%s: the `understudy up` that wrote it (pid %d) is not running", path, st.Pid)
	}
	rt, err := topology.Load(st.Topology, getenv)
	if err != nil {
		return nil, fmt.Errorf("resolved topology: %w", err)
	}
	if st.Control == "" {
		return nil, fmt.Errorf("%s has no control API URL: this `understudy up` is too old for drills", path)
	}
	return NewSystem(rt, st), nil
}

// NewSystem returns the system of a resolved topology and its up.json.
func NewSystem(t *topology.Topology, st up.State) *System {
	s := &System{Topology: t, State: st, Token: t.Admin.Token.Value(), client: &http.Client{Timeout: 30 * time.Second}}
	if len(t.Keys) > 0 {
		s.Key = t.Keys[0].Key.Value()
	}
	return s
}

var sigZero = syscall.Signal(0)

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(sigZero) == nil
}

// EdgeURL is where clients reach the edge.
func (s *System) EdgeURL() string { return s.Topology.Edge.URL }

// ControllerURL is the controller's API.
func (s *System) ControllerURL() string { return s.Topology.Controller.URL }

// Components returns the components of a region of the given kind ("" for
// every kind), as up.json lists them.
func (s *System) Components(region, kind string) []up.ComponentState {
	var out []up.ComponentState
	for _, c := range s.State.Components {
		if c.Region == region && (kind == "" || c.Kind == kind) {
			out = append(out, c)
		}
	}
	return out
}

// Link returns the named link proxy, or false when up runs without links.
func (s *System) Link(name string) (up.LinkState, bool) {
	for _, l := range s.State.Links {
		if l.Name == name {
			return l, true
		}
	}
	return up.LinkState{}, false
}

// call sends a JSON request with the admin token and decodes a JSON answer
// into out (when non-nil); a non-2xx answer is an error with its body.
func (s *System) call(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return nil
}

// ControllerStatus is the part of the controller's GET /v1/status a drill
// reads.
type ControllerStatus struct {
	Primary       string                 `json:"primary"`
	Epoch         int64                  `json:"epoch"`
	Regions       map[string]*RegionView `json:"regions"`
	Active        *Runbook               `json:"active"`
	Pending       *Runbook               `json:"pending"`
	Last          *Runbook               `json:"last"`
	CooldownUntil time.Time              `json:"cooldown_until"`
	// Drift is the controller's last drift verdict per region, when it
	// runs drift checks (it refuses an automatic failover to NOT_READY).
	Drift map[string]string `json:"drift"`
}

// RegionView is the controller's view of one region.
type RegionView struct {
	Up        bool      `json:"up"`
	LastOK    bool      `json:"last_ok"`
	LastError string    `json:"last_error"`
	At        time.Time `json:"at"`
	Readiness struct {
		Role        string `json:"role"`
		Epoch       int64  `json:"epoch"`
		Writable    bool   `json:"writable"`
		Position    int64  `json:"position"`
		Replication map[string]struct {
			Events    int64   `json:"events"`
			Seconds   float64 `json:"seconds"`
			Connected bool    `json:"connected"`
		} `json:"replication"`
	} `json:"readiness"`
}

// Runbook is a controller runbook run (failover or failback).
type Runbook struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	From    string         `json:"from"`
	To      string         `json:"to"`
	Reason  string         `json:"reason"`
	Planned bool           `json:"planned"`
	Status  string         `json:"status"`
	FaultAt time.Time      `json:"fault_at"`
	Created time.Time      `json:"created"`
	Ended   time.Time      `json:"ended"`
	Steps   []RunStep      `json:"steps"`
	Data    map[string]any `json:"data"`
	Error   string         `json:"error"`
}

// RunStep is one runbook step.
type RunStep struct {
	Name     string    `json:"name"`
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
}

// Finished reports whether the run has ended.
func (r *Runbook) Finished() bool {
	return r != nil && (r.Status == "completed" || r.Status == "failed")
}

// Status returns the controller's status.
func (s *System) Status(ctx context.Context) (ControllerStatus, error) {
	var st ControllerStatus
	err := s.call(ctx, "GET", s.ControllerURL()+"/v1/status", nil, &st)
	return st, err
}

// Runs returns every runbook run the controller journaled.
func (s *System) Runs(ctx context.Context) ([]Runbook, error) {
	var ans struct {
		Data []Runbook `json:"data"`
	}
	err := s.call(ctx, "GET", s.ControllerURL()+"/v1/runs", nil, &ans)
	return ans.Data, err
}

// Failback asks the controller for a planned move back to the topology's
// primary and returns the run it started.
func (s *System) Failback(ctx context.Context) (Runbook, error) {
	var r Runbook
	err := s.call(ctx, "POST", s.ControllerURL()+"/v1/failback", map[string]any{}, &r)
	return r, err
}

// Origin is the edge's view of one origin.
type Origin struct {
	Name     string `json:"name"`
	Healthy  bool   `json:"healthy"`
	Serving  bool   `json:"serving"`
	Ejected  bool   `json:"ejected"`
	Priority int    `json:"priority"`
	Role     string `json:"role"`
	Epoch    int64  `json:"epoch"`
}

// Origins returns the edge's origins.
func (s *System) Origins(ctx context.Context) ([]Origin, error) {
	var ans struct {
		Origins []Origin `json:"origins"`
	}
	err := s.call(ctx, "GET", s.EdgeURL()+"/admin/origins", nil, &ans)
	return ans.Origins, err
}

// control calls up's control API.
func (s *System) control(ctx context.Context, path string) error {
	return s.call(ctx, "POST", s.State.Control+path, nil, nil)
}

// partition asks up's control API to partition region (or heal it).
func (s *System) partition(ctx context.Context, region string, cut bool) (up.PartitionResult, error) {
	action := "heal"
	if cut {
		action = "partition"
	}
	var res up.PartitionResult
	err := s.call(ctx, "POST", s.State.Control+"/v1/regions/"+region+"/"+action, nil, &res)
	return res, err
}

// linkLatency sets a link proxy's latency and returns the one it had.
func (s *System) linkLatency(ctx context.Context, name string, d time.Duration) (time.Duration, error) {
	l, ok := s.Link(name)
	if !ok {
		return 0, fmt.Errorf("no link proxy %q: set links.enabled: true in the topology so that `up` places link proxies", name)
	}
	var st struct {
		Latency string `json:"latency"`
	}
	if err := s.call(ctx, "GET", l.Admin, nil, &st); err != nil {
		return 0, err
	}
	old, _ := time.ParseDuration(st.Latency)
	return old, s.setLinkLatency(ctx, name, d)
}

// setLinkLatency sets a link proxy's latency.
func (s *System) setLinkLatency(ctx context.Context, name string, d time.Duration) error {
	l, ok := s.Link(name)
	if !ok {
		return fmt.Errorf("no link proxy %q", name)
	}
	return s.call(ctx, "PUT", l.Admin+"/latency", map[string]string{"latency": d.String()}, nil)
}

// setFaults replaces a model server's faults; nil clears them.
func (s *System) setFaults(ctx context.Context, modelsimURL string, faults map[string]any) error {
	if faults == nil {
		return s.call(ctx, "DELETE", modelsimURL+"/admin/faults", nil, nil)
	}
	return s.call(ctx, "PUT", modelsimURL+"/admin/faults", faults, nil)
}
