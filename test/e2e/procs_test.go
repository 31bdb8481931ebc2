package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers shared by the end-to-end tests: build the real binary once, start
// components as processes, wait for their ready lines, kill them on exit.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// TestMain removes the shared build directory after every test ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds ./cmd/understudy once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		binDir, err = os.MkdirTemp("", "understudy-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "understudy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/understudy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a component started as its own process.
type proc struct {
	name  string
	args  []string
	ready map[string]string // key=value pairs of its ready line
	log   *lockedBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs the binary with args and waits (up to 30s) for its ready line.
// Whatever process p runs when the test ends (after restarts too) is
// killed, pass or fail, and its output is logged when the test failed.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, log: &lockedBuffer{}}
	bin := binary(t)
	t.Cleanup(func() {
		p.mu.Lock()
		cmd, done := p.cmd, p.done
		p.mu.Unlock()
		if cmd != nil {
			// SIGCONT first so a process the test froze does not linger stopped.
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", p.name, p.log.String())
		}
	})
	if err := p.launch(bin); err != nil {
		t.Fatal(err)
	}
	return p
}

// terminate sends SIGTERM and waits up to grace for the process to exit;
// SIGKILL after that.
func (p *proc) terminate(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// launch starts the process and waits for its ready line. It may run
// outside the test goroutine (it never calls t.Fatal).
func (p *proc) launch(bin string) error {
	cmd := exec.Command(bin, p.args...)
	cmd.Stderr = p.log
	// Die with the test binary; own process group so signals reach only it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	readyc := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if !sent && strings.HasPrefix(line, "ready ") {
				kv := map[string]string{}
				for _, f := range strings.Fields(line[len("ready "):]) {
					if k, v, ok := strings.Cut(f, "="); ok {
						kv[k] = v
					}
				}
				readyc <- kv
				sent = true
			}
		}
		cmd.Wait()
		close(done)
	}()
	select {
	case kv := <-readyc:
		p.mu.Lock()
		p.ready = kv
		p.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("%s exited before it was ready", p.name)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s not ready within 30s", p.name)
	}
}

// restart starts the process again with the same arguments once the
// current one has exited.
func (p *proc) restart() error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	<-done
	return p.launch(binPath)
}

// signal sends sig to the current process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s to %s: %w", sig, p.name, err)
	}
	return nil
}
