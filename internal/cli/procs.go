package cli

// applyProcs caps GOMAXPROCS at n through gomaxprocs (runtime.GOMAXPROCS
// in the commands) when n > 0, the topology's gateway.procs or edge.procs,
// and returns the value in effect afterwards for the ready line. n <= 0
// leaves Go's default (the CPUs the process may use, or the GOMAXPROCS
// environment variable) untouched. The gateway and edge commands call it
// before they serve; tests' in-process servers never do.
func applyProcs(n int, gomaxprocs func(int) int) int {
	if n > 0 {
		gomaxprocs(n)
	}
	return gomaxprocs(0)
}
