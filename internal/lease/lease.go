package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors a Holder's Check returns; callers match them with errors.Is.
var (
	// ErrExpired means no grantor renewed the lease in time.
	ErrExpired = errors.New("write lease expired")
	// ErrSuperseded means a grantor answered that a newer epoch or another
	// primary exists: this region must fence itself.
	ErrSuperseded = errors.New("write lease refused: superseded")
)

// Grant is a renewal: the epoch it is for and how long it lasts from the
// moment the request was sent.
type Grant struct {
	Epoch int64
	TTL   time.Duration
}

// Renewer asks one grantor to renew the lease of region at epoch. It
// returns an error wrapping ErrSuperseded when the grantor knows of a newer
// epoch or another primary.
type Renewer func(ctx context.Context, region string, epoch int64) (Grant, error)

// DriftMargin is the fraction of a TTL taken off every grant for clock-rate
// drift between machines (1% is 10,000 ppm, far above real quartz drift),
// plus MinMargin.
const (
	DriftMargin = 0.01
	MinMargin   = 50 * time.Millisecond
)

// Holder keeps a primary's lease. Its zero value is not usable; use NewHolder.
type Holder struct {
	region   string
	renewers []Renewer // in order of preference: controller, then standby
	interval time.Duration
	log      *slog.Logger

	mu         sync.Mutex
	epoch      int64
	validUntil time.Time // monotonic
	superseded error
	lastErr    error
	from       int // index of the renewer that granted last

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// NewHolder returns a holder for region at epoch that renews every
// interval (TTL/3 is the rule) from renewers, in order. It starts with no
// lease: writes are refused until the first renewal succeeds.
func NewHolder(region string, epoch int64, interval time.Duration, log *slog.Logger, renewers ...Renewer) *Holder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Holder{region: region, epoch: epoch, interval: interval, renewers: renewers, log: log}
}

// Check returns nil while the lease is valid. It is the store's guard
// hook: it runs just before a write commits.
func (h *Holder) Check(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.superseded != nil {
		return h.superseded
	}
	if now := time.Now(); !now.Before(h.validUntil) {
		if h.lastErr != nil {
			return fmt.Errorf("%w (last renewal: %v)", ErrExpired, h.lastErr)
		}
		return ErrExpired
	}
	return nil
}

// Status reports the lease for /readyz and status: the epoch, how long it
// is still valid (0 when expired), which grantor renewed it last (0 the
// first renewer, 1 the second, …), and the last renewal error.
func (h *Holder) Status() (epoch int64, remaining time.Duration, from int, lastErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	remaining = max(0, time.Until(h.validUntil))
	if h.superseded != nil {
		remaining = 0
	}
	return h.epoch, remaining, h.from, h.lastErr
}

// SetEpoch moves the holder to a new epoch (after this region was
// promoted); the lease starts empty again.
func (h *Holder) SetEpoch(epoch int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.epoch, h.validUntil, h.superseded, h.lastErr = epoch, time.Time{}, nil, nil
}

// Step renews once: it asks each renewer in order until one grants. It
// returns ErrSuperseded (wrapped) when a grantor refused for a newer
// epoch, and the last error when none could be reached.
func (h *Holder) Step(ctx context.Context) error {
	h.mu.Lock()
	epoch := h.epoch
	done := h.superseded != nil
	h.mu.Unlock()
	if done {
		return h.superseded
	}
	var errs []error
	for i, renew := range h.renewers {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, h.interval)
		g, err := renew(rctx, h.region, epoch)
		cancel()
		if errors.Is(err, ErrSuperseded) {
			h.mu.Lock()
			h.superseded = err
			h.mu.Unlock()
			h.log.Error("write lease superseded: this region must stop writing", "region", h.region, "epoch", epoch, "err", err)
			return err
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if g.Epoch != epoch {
			errs = append(errs, fmt.Errorf("grant for epoch %d, holder is at %d", g.Epoch, epoch))
			continue
		}
		until := sent.Add(g.TTL - margin(g.TTL))
		h.mu.Lock()
		if until.After(h.validUntil) {
			h.validUntil = until
		}
		h.from, h.lastErr = i, nil
		h.mu.Unlock()
		return nil
	}
	err := errors.Join(errs...)
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
	return err
}

func margin(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*DriftMargin) + MinMargin
}

// Start renews every interval until Close.
func (h *Holder) Start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Go(func() {
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			if err := h.Step(ctx); errors.Is(err, ErrSuperseded) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// Close stops renewing; the lease then runs out on its own.
func (h *Holder) Close(ctx context.Context) error {
	if h.cancel != nil {
		h.cancel()
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Grantor grants leases to one primary at one epoch: the controller runs
// one, and so does every standby (vouching for its primary).
type Grantor struct {
	ttl time.Duration

	mu        sync.Mutex
	primary   string
	epoch     int64
	lastGrant time.Time
	stopped   bool
}

// NewGrantor returns a grantor of leases of ttl to primary at epoch.
func NewGrantor(ttl time.Duration, primary string, epoch int64) *Grantor {
	return &Grantor{ttl: ttl, primary: primary, epoch: epoch}
}

// Refusal says why a grantor refused; it wraps ErrSuperseded when the
// asker is not (or no longer) the primary of the current epoch.
type Refusal struct {
	Primary    string
	Epoch      int64
	Reason     string
	Superseded bool // the asker is not the primary of the grantor's epoch
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s (primary %s at epoch %d)", r.Reason, r.Primary, r.Epoch)
}

// Unwrap lets errors.Is(err, ErrSuperseded) match a refusal that means the
// asker has been replaced; a stopped or stale grantor only will not vouch.
func (r *Refusal) Unwrap() error {
	if r.Superseded {
		return ErrSuperseded
	}
	return nil
}

// Renew grants a lease of the grantor's TTL to region at epoch, or refuses.
func (g *Grantor) Renew(region string, epoch int64) (Grant, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case epoch < g.epoch:
		return Grant{}, &Refusal{g.primary, g.epoch, fmt.Sprintf("epoch %d is older than %d", epoch, g.epoch), true}
	case epoch == g.epoch && region != g.primary:
		return Grant{}, &Refusal{g.primary, g.epoch, fmt.Sprintf("%s is not the primary", region), true}
	case epoch > g.epoch:
		// The asker knows a newer epoch than this grantor: this grantor is stale.
		return Grant{}, &Refusal{g.primary, g.epoch, fmt.Sprintf("grantor is at epoch %d, behind %d", g.epoch, epoch), false}
	case g.stopped:
		return Grant{}, &Refusal{g.primary, g.epoch, "grantor stopped", false}
	}
	g.lastGrant = time.Now()
	return Grant{Epoch: g.epoch, TTL: g.ttl}, nil
}

// Stop makes the grantor refuse every renewal from now on and returns how
// long its last grant may still be in force (0 if none is).
func (g *Grantor) Stop() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	if g.lastGrant.IsZero() {
		return 0
	}
	return max(0, time.Until(g.lastGrant.Add(g.ttl)))
}

// Reset points the grantor at a new primary and epoch and lets it grant again.
func (g *Grantor) Reset(primary string, epoch int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.primary, g.epoch, g.stopped, g.lastGrant = primary, epoch, false, time.Time{}
}

// State returns the grantor's primary, epoch and whether it is stopped.
func (g *Grantor) State() (primary string, epoch int64, stopped bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.primary, g.epoch, g.stopped
}
