package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Scenarios are the drills the page offers (`understudy drill --scenario`).
var Scenarios = []string{"region-outage", "region-freeze", "partition", "slow-link",
	"backend-429-storm", "slow-backend", "version-drift"}

// DrillView is the page's view of the latest drill.
type DrillView struct {
	ID       string    `json:"id"`
	Scenario string    `json:"scenario"`
	Running  bool      `json:"running"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	// ExitCode is the drill's exit status once it ended: 0 passed, 1 a
	// target was missed or the drill failed, 2 misuse, -1 killed.
	ExitCode int    `json:"exit_code"`
	Report   string `json:"report"` // the report directory
	HasHTML  bool   `json:"has_html"`
	Log      string `json:"log"` // the log file
	// Tail is the last lines the drill printed.
	Tail []string `json:"tail"`
}

// drillRun is one `understudy drill` child process.
type drillRun struct {
	view DrillView // guarded by Server.mu
	cmd  *exec.Cmd
	done chan struct{}
	out  *tailWriter
}

// Errors startDrill returns for a request the page should correct.
var (
	ErrDrillRunning    = errors.New("a drill is already running")
	ErrUnknownScenario = errors.New("unknown scenario")
)

// startDrill runs `understudy drill --scenario NAME -f TOPOLOGY --report
// DIR` with its output in DIR/drill.log.
func (s *Server) startDrill(scenario string) (DrillView, error) {
	if !slices.Contains(Scenarios, scenario) {
		return DrillView{}, fmt.Errorf("%w %q (one of %s)", ErrUnknownScenario, scenario, strings.Join(Scenarios, ", "))
	}
	if s.opts.TopologyPath == "" {
		return DrillView{}, errors.New("the controller was started without a topology file; drills need one")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drill != nil && s.drill.view.Running {
		return DrillView{}, fmt.Errorf("%w: %s", ErrDrillRunning, s.drill.view.ID)
	}
	now := s.now()
	id := scenario + "-" + now.UTC().Format("20060102T150405")
	dir := filepath.Join(s.t.Path(s.t.DataDir), "drills", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return DrillView{}, err
	}
	logPath := filepath.Join(dir, "drill.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return DrillView{}, err
	}
	out := &tailWriter{w: logf, max: 30}
	cmd := exec.Command(s.opts.Binary, "drill", "--scenario", scenario, "-f", s.opts.TopologyPath, "--report", dir)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group (a terminal's Ctrl-C reaches the controller,
	// which stops the drill in order); it dies with the controller.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return DrillView{}, fmt.Errorf("start drill: %w", err)
	}
	d := &drillRun{cmd: cmd, done: make(chan struct{}), out: out,
		view: DrillView{ID: id, Scenario: scenario, Running: true, Started: now, Report: dir, Log: logPath}}
	s.drill = d
	s.log.Info("drill started", "drill", id, "pid", cmd.Process.Pid)
	s.wg.Go(func() {
		err := cmd.Wait()
		logf.Close()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.Exited() {
				code = ee.ExitCode()
			}
		}
		_, herr := os.Stat(filepath.Join(dir, "report.html"))
		s.mu.Lock()
		d.view.Running, d.view.Ended, d.view.ExitCode, d.view.HasHTML = false, s.now(), code, herr == nil
		s.mu.Unlock()
		s.log.Info("drill ended", "drill", id, "exit", code)
		close(d.done)
	})
	return d.view, nil
}

// stopDrill asks the running drill to stop (SIGINT: it restores what it
// broke and writes its report), then kills it after grace.
func (s *Server) stopDrill(grace time.Duration) error {
	s.mu.Lock()
	d := s.drill
	s.mu.Unlock()
	if d == nil {
		return errors.New("no drill is running")
	}
	select {
	case <-d.done:
		return errors.New("no drill is running")
	default:
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d.done:
	case <-t.C:
		d.cmd.Process.Kill()
		<-d.done
	}
	return nil
}

// drillViewLocked returns the latest drill's view; s.mu is held.
func (s *Server) drillViewLocked() *DrillView {
	if s.drill == nil {
		return nil
	}
	v := s.drill.view
	v.Tail = s.drill.out.lines()
	return &v
}

// tailWriter writes through to w and keeps the last max lines.
type tailWriter struct {
	mu      sync.Mutex
	w       *os.File
	max     int
	partial []byte
	tail    []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Write(p)
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(t.partial[:i]), "\r")
		t.partial = t.partial[i+1:]
		if len(t.tail) == t.max {
			t.tail = append(t.tail[:0], t.tail[1:]...)
		}
		t.tail = append(t.tail, line)
	}
	if len(t.partial) > 4096 { // a very long line without a newline
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.tail)
}
