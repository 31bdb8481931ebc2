// Command jitter measures how much of each CPU a running thread does not
// get: on every CPU it may use, one thread pinned there reads the clock in
// a tight loop for -duration, and every gap between two consecutive reads
// of at least 10 µs is time the thread was not running (an interrupt, the
// hypervisor, another task). It prints, per CPU, the gaps per second and
// the share of time lost by gap size, and the longest gap; with -brief,
// one line per CPU for the stalls of 100 µs and 500 µs or more (what the
// bench scripts print beside their runs).
//
// It is the noise floor under every latency percentile in
// docs/PERFORMANCE.md: a request cannot be faster at p99 than the stalls
// its processes sit through. Run it on an idle machine (it keeps every CPU
// busy while it runs):
//
//	go run ./bench/jitter [-duration 10s] [-brief]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// edges are the lower bounds of the gap classes reported.
var edges = []time.Duration{
	10 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
}

// hist counts gaps by class (the largest edge at or below the gap) and
// sums the time they lost; gaps below the first edge are not kept.
type hist struct {
	count []int
	lost  []time.Duration
	max   time.Duration
}

func newHist() *hist {
	return &hist{count: make([]int, len(edges)), lost: make([]time.Duration, len(edges))}
}

func (h *hist) add(gap time.Duration) {
	h.max = max(h.max, gap)
	for i := len(edges) - 1; i >= 0; i-- {
		if gap >= edges[i] {
			h.count[i]++
			h.lost[i] += gap
			return
		}
	}
}

// atLeast describes the gaps of at least edge (one of edges) over took:
// how many a second and their share of the time.
func (h *hist) atLeast(edge, took time.Duration) string {
	var n int
	var lost time.Duration
	for i, e := range edges {
		if e >= edge {
			n += h.count[i]
			lost += h.lost[i]
		}
	}
	return fmt.Sprintf("%.1f/s (%.2f%% of the time)", float64(n)/took.Seconds(), 100*float64(lost)/float64(took))
}

// spin reads the clock (time.Now, or a test's) until d has passed and
// returns the gaps and the time measured.
func spin(d time.Duration, clock func() time.Time) (*hist, time.Duration) {
	h := newHist()
	start := clock()
	prev := start
	for prev.Sub(start) < d {
		now := clock()
		if g := now.Sub(prev); g >= edges[0] {
			h.add(g)
		}
		prev = now
	}
	return h, prev.Sub(start)
}

func main() {
	d := flag.Duration("duration", 10*time.Second, "how long to measure")
	brief := flag.Bool("brief", false, "one line per CPU: stalls of 100 µs and 500 µs or more, and the longest")
	flag.Parse()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		fmt.Fprintln(os.Stderr, "jitter:", err)
		os.Exit(1)
	}
	var cpus []int
	for c := range 1024 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	runtime.GOMAXPROCS(len(cpus) + 1)
	hs := make([]*hist, len(cpus))
	took := make([]time.Duration, len(cpus))
	errs := make([]error, len(cpus))
	var wg sync.WaitGroup
	for i, c := range cpus {
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			var one unix.CPUSet
			one.Set(c)
			if errs[i] = unix.SchedSetaffinity(0, &one); errs[i] == nil {
				hs[i], took[i] = spin(*d, time.Now)
			}
		})
	}
	wg.Wait()
	for i, c := range cpus {
		if errs[i] != nil {
			fmt.Fprintf(os.Stderr, "jitter: pin to CPU %d: %v\n", c, errs[i])
			os.Exit(1)
		}
		if *brief {
			fmt.Printf("cpu %d: stalls of 100µs or more %s, of 500µs or more %s, longest %v\n",
				c, hs[i].atLeast(100*time.Microsecond, took[i]), hs[i].atLeast(500*time.Microsecond, took[i]), hs[i].max.Round(time.Microsecond))
			continue
		}
		fmt.Printf("cpu %d: %v measured, longest gap %v\n", c, took[i].Round(time.Millisecond), hs[i].max)
		for j, e := range edges {
			fmt.Printf("  gap >= %-6v %8.1f/s  %5.2f%% of the time\n", e,
				float64(hs[i].count[j])/took[i].Seconds(), 100*float64(hs[i].lost[j])/float64(took[i]))
		}
	}
}
