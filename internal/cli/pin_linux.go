package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/understudy/understudy/internal/topology"
)

// pinCPUs restricts every thread of this process to cpus. A thread
// inherits its creator's CPU mask, so a thread started meanwhile by one
// not yet pinned shows up in the next pass over /proc/self/task; the
// passes end when one finds no thread left to pin.
func pinCPUs(cpus []int) error {
	var allowed, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("cpus: %w", err)
	}
	for _, c := range cpus {
		if c < 0 || !allowed.IsSet(c) {
			return fmt.Errorf("cpus: CPU %d is not one this process may use (%s)", c, cpuList(&allowed))
		}
		set.Set(c)
	}
	pinned := map[int]bool{}
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("cpus: %w", err)
		}
		n := 0
		for _, e := range tasks {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cpus: pin thread %d: %w", tid, err)
			}
			pinned[tid] = true
			n++
		}
		if n == 0 {
			return nil
		}
	}
}

// cpuList writes a CPU set as "0,1,3".
func cpuList(s *unix.CPUSet) string {
	var out []byte
	for c := range topology.MaxCPU + 1 {
		if s.IsSet(c) {
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendInt(out, int64(c), 10)
		}
	}
	return string(out)
}
