package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/understudy/understudy/internal/topology"
)

// Checker runs the checks on an interval and keeps the last report, for
// the controller (which refuses automatic failover to a NOT_READY region)
// and for /metrics. New starts nothing; Start runs a first check at once
// and then one every interval; Close stops it.
type Checker struct {
	t     *topology.Topology
	every time.Duration
	opts  Options
	log   *slog.Logger

	mu   sync.Mutex
	last Report
	have bool
	kick chan struct{} // ReadyCheck asks the loop for a fresh report

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewChecker returns a checker of t that runs every interval (default 1m)
// with opts. log receives a line per verdict change (default: discard).
func NewChecker(t *topology.Topology, every time.Duration, opts Options, log *slog.Logger) *Checker {
	if every <= 0 {
		every = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{t: t, every: every, opts: opts, log: log, kick: make(chan struct{}, 1)}
}

// recheck is the age of a report past which a refusing ReadyCheck has the
// loop check again at once.
const recheck = time.Second

// Step runs the checks once, keeps the report and returns it.
func (c *Checker) Step(ctx context.Context) (Report, error) {
	r, err := Check(ctx, c.t, c.opts)
	if err != nil {
		return r, err
	}
	c.mu.Lock()
	prev, had := c.last, c.have
	c.last, c.have = r, true
	c.mu.Unlock()
	for _, rr := range r.Regions {
		if had && prev.Verdict(rr.Region) == rr.Verdict {
			continue
		}
		lvl := slog.LevelInfo
		if rr.Verdict != Ready {
			lvl = slog.LevelWarn
		}
		c.log.LogAttrs(ctx, lvl, "drift verdict", slog.String("region", rr.Region), slog.String("verdict", string(rr.Verdict)),
			slog.Any("reasons", rr.Reasons))
	}
	return r, nil
}

// Start runs Step now and then every interval until Close.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("drift: checker already started")
	}
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg.Go(func() {
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-c.kick:
			}
			if _, err := c.Step(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("drift check", slog.Any("err", err))
			}
			t.Reset(c.every)
		}
	})
	return nil
}

// Close stops the loop and waits for a check in progress, within ctx.
func (c *Checker) Close(ctx context.Context) error {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Last returns the last report; ok is false before the first.
func (c *Checker) Last() (r Report, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.have
}

// Verdict is region's verdict in the last report: UNKNOWN before the
// first report and for regions it does not cover.
func (c *Checker) Verdict(region string) Verdict {
	r, ok := c.Last()
	if !ok {
		return Unknown
	}
	return r.Verdict(region)
}

// ReadyCheck answers the controller's question before an automatic
// failover (controller.Options.ReadyCheck) from the last report, without
// checking again (a check can take its whole timeout while a region is
// down): ok is false only when region is NOT_READY, with the reasons.
// UNKNOWN, and no report yet, do not refuse a failover. A refusal from a
// report older than a second has the loop (once started) check again at
// once, so a verdict the primary's failure made stale (taken before the
// standby had connected, say) holds a failover up for one check, not for
// the rest of the interval.
func (c *Checker) ReadyCheck(ctx context.Context, region string) (ok bool, reason string) {
	r, have := c.Last()
	if !have {
		return true, ""
	}
	rr := r.Region(region)
	if rr == nil || rr.Verdict != NotReady {
		return true, ""
	}
	if time.Since(r.At) >= recheck {
		select {
		case c.kick <- struct{}{}:
		default: // a check is already asked for
		}
	}
	reasons := rr.Reasons
	const show = 3
	more := ""
	if len(reasons) > show {
		more = fmt.Sprintf("; and %d more", len(reasons)-show)
		reasons = reasons[:show]
	}
	return false, fmt.Sprintf("drift at %s: %s is NOT_READY: %s%s", r.At.Format(time.RFC3339), region, strings.Join(reasons, "; "), more)
}

// Describe implements prometheus.Collector.
func (c *Checker) Describe(ch chan<- *prometheus.Desc) { describe(ch) }

// Collect implements prometheus.Collector: the last report's series
// (none before the first report).
func (c *Checker) Collect(ch chan<- prometheus.Metric) { reportCollector(c.Last).Collect(ch) }
