package cli

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// applyRuntime applies a component's procs and cpus from the topology
// (gateway or edge) before it serves and returns its ready line's fields:
// "procs=N", then " cpus=1,3" when pinned. Listed CPUs pin every thread;
// with procs unset, GOMAXPROCS becomes the number of CPUs listed.
func applyRuntime(procs int, cpus []int) (string, error) {
	if len(cpus) > 0 {
		if err := pinCPUs(cpus); err != nil {
			return "", err
		}
		if procs <= 0 {
			procs = len(cpus)
		}
	}
	fields := "procs=" + strconv.Itoa(applyProcs(procs, runtime.GOMAXPROCS))
	if len(cpus) > 0 {
		fields += " cpus=" + joinInts(cpus)
	}
	return fields, nil
}

// applyProcs caps GOMAXPROCS at n through gomaxprocs (runtime.GOMAXPROCS
// in the commands) when n > 0, and returns the value in effect afterwards.
// n <= 0 leaves Go's default (the CPUs the process may use, or the
// GOMAXPROCS environment variable) untouched. The gateway and edge
// commands call it before they serve; tests' in-process servers never do.
func applyProcs(n int, gomaxprocs func(int) int) int {
	if n > 0 {
		gomaxprocs(n)
	}
	return gomaxprocs(0)
}

// joinInts writes ns as "1,3".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// runtimeNote is the validate summary's note on a component's procs and
// cpus: empty when neither is set, so the usual summary stays as it was.
func runtimeNote(procs int, cpus []int) string {
	if len(cpus) > 0 {
		if procs <= 0 {
			procs = len(cpus)
		}
		return fmt.Sprintf(" (GOMAXPROCS %d, CPUs %s)", procs, joinInts(cpus))
	}
	if procs > 0 {
		return fmt.Sprintf(" (GOMAXPROCS %d)", procs)
	}
	return ""
}
