package cli

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/understudy/understudy/internal/topology"
)

// TestPinCPUs pins a child process (this test binary in helper mode) to
// one CPU it may use and reads every thread's mask from /proc: all threads,
// those started after the pinning too, may run on that CPU only, and
// GOMAXPROCS is 1. A CPU the process may not use is refused, pinning
// nothing.
func TestPinCPUs(t *testing.T) {
	if os.Getenv("UNDERSTUDY_PIN_HELPER") == "1" {
		pinHelper()
		return
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu, refused := -1, -1
	for c := range topology.MaxCPU + 1 {
		switch {
		case allowed.IsSet(c) && cpu < 0:
			cpu = c
		case !allowed.IsSet(c) && refused < 0:
			refused = c
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPinCPUs$")
	cmd.Env = append(os.Environ(), "UNDERSTUDY_PIN_HELPER=1", "UNDERSTUDY_PIN_CPU="+strconv.Itoa(cpu))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var threads int
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if mask, ok := strings.CutPrefix(line, "thread "); ok {
			threads++
			if _, list, _ := strings.Cut(mask, " "); list != strconv.Itoa(cpu) {
				t.Errorf("thread %s, want CPU %d only", mask, cpu)
			}
		}
	}
	if threads < 3 {
		t.Errorf("helper listed %d threads, want the runtime's and the locked ones:\n%s", threads, out)
	}
	if want := "fields procs=1 cpus=" + strconv.Itoa(cpu); !strings.Contains(string(out), want) {
		t.Errorf("helper output lacks %q:\n%s", want, out)
	}

	if refused >= 0 {
		_, err := applyRuntime(0, []int{cpu, refused})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("CPU %d is not one this process may use", refused)) {
			t.Errorf("pinning to CPU %d: %v, want a refusal", refused, err)
		}
		var now unix.CPUSet
		if err := unix.SchedGetaffinity(0, &now); err != nil || now != allowed {
			t.Errorf("a refused pinning changed this thread's CPUs (%v)", err)
		}
	}
}

// pinHelper pins this process, starts threads that did not exist before
// (goroutines locked to their own thread), and prints every thread's
// allowed CPUs.
func pinHelper() {
	cpu, _ := strconv.Atoi(os.Getenv("UNDERSTUDY_PIN_CPU"))
	fields, err := applyRuntime(0, []int{cpu})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("fields", fields)
	var started, release sync.WaitGroup
	hold := make(chan struct{})
	for range 3 {
		started.Add(1)
		release.Add(1)
		go func() {
			defer release.Done()
			runtime.LockOSThread()
			started.Done()
			<-hold
		}()
	}
	started.Wait()
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, e := range tasks {
		status, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // exited meanwhile
		}
		for line := range strings.Lines(string(status)) {
			if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				fmt.Println("thread", e.Name(), strings.TrimSpace(list))
			}
		}
	}
	close(hold)
	release.Wait()
}
