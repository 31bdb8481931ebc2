package up

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/understudy/understudy/internal/netns"
)

// Spec says how to start one component.
type Spec struct {
	Name    string   // unique, e.g. gateway/eastus2
	Kind    string   // modelsim, gateway, edge, controller, linkproxy
	Region  string   // empty for global components
	Replica int      // a region's gateway replica, 1..N (regions[].replicas > 1); 0 otherwise
	Args    []string // arguments after the binary
	Netns   string   // network namespace to run in (`ip netns exec`), or ""
}

// Proc is a running component.
type Proc struct {
	Spec
	URL   string            // from its ready line
	Ready map[string]string // every key=value of its ready line
	Log   string            // file that holds its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit status once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// start runs bin with the spec's arguments, its output appended to logPath,
// and waits until it prints its ready line, exits, or readyTimeout passes.
func start(ctx context.Context, bin string, s Spec, logPath string, readyTimeout time.Duration) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, s.Args...)
	if s.Netns != "" {
		cmd = netns.Command(s.Netns, bin, s.Args...)
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	// Children die with up, even when up is killed with SIGKILL; and they
	// get their own process group so a terminal's Ctrl-C reaches up alone,
	// which then stops them in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Spec: s, Log: logPath, cmd: cmd, done: make(chan struct{})}
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !sent && strings.HasPrefix(line, "ready ") {
				ready <- parseKV(line[len("ready "):])
				sent = true
			}
		}
		io.Copy(logf, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case kv := <-ready:
		p.Ready, p.URL = kv, kv["url"]
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", s.Name, p.err, tail(logPath, 20))
	case <-timer.C:
		err = fmt.Errorf("%s not ready after %s:\n%s", s.Name, readyTimeout, tail(logPath, 20))
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.stop(2 * time.Second)
	return nil, err
}

// stop sends SIGTERM (SIGCONT first, in case the process is frozen), then
// SIGKILL after grace, and waits for the exit.
func (p *Proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// parseKV parses `a=1 b=two` into a map.
func parseKV(s string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// tail returns the last n lines of a file, indented, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// exitErr describes how a process ended.
func exitErr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// group tracks running processes by name.
type group struct {
	mu    sync.Mutex
	procs []*Proc
}

func (g *group) add(p *Proc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs = append(g.procs, p)
}

func (g *group) get(name string) *Proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// replace puts p in the place of the process of the same name.
func (g *group) replace(p *Proc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.procs {
		if g.procs[i].Name == p.Name {
			g.procs[i] = p
		}
	}
}

func (g *group) list() []*Proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Proc(nil), g.procs...)
}
