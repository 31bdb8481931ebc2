package edge

import (
	"sync"
	"time"
)

// Event is one entry of the admin event stream.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is one of: health (probe window changed), eject (passive
	// ejection), return (back after an ejection), role (an origin's
	// reported role or epoch changed), route (where traffic goes changed),
	// retry (an attempt failed and the request moved on), admin (an origin
	// was changed through the admin API), draining (the edge is stopping).
	Kind    string `json:"kind"`
	Origin  string `json:"origin,omitempty"`
	Message string `json:"message"`
	// Detail carries kind-specific fields (healthy, until, reason, epoch...).
	Detail map[string]any `json:"detail,omitempty"`
}

// bus fans events out to subscribers and keeps the latest for new ones.
// A subscriber that does not keep up loses events (counted), never blocks
// the edge.
type bus struct {
	mu      sync.Mutex
	seq     uint64
	recent  []Event
	keep    int
	subs    map[chan Event]struct{}
	closed  chan struct{}
	dropped uint64
	now     func() time.Time
}

func newBus(keep int, now func() time.Time) *bus {
	return &bus{keep: keep, subs: map[chan Event]struct{}{}, closed: make(chan struct{}), now: now}
}

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = b.now()
	}
	if len(b.recent) == b.keep {
		copy(b.recent, b.recent[1:])
		b.recent = b.recent[:b.keep-1]
	}
	b.recent = append(b.recent, ev)
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			b.dropped++
		}
	}
}

// subscribe returns the recent events after seq `after` and a channel of
// the next ones; cancel must be called.
func (b *bus) subscribe(after uint64) (backlog []Event, ch <-chan Event, cancel func()) {
	c := make(chan Event, 256)
	b.mu.Lock()
	for _, ev := range b.recent {
		if ev.Seq > after {
			backlog = append(backlog, ev)
		}
	}
	b.subs[c] = struct{}{}
	b.mu.Unlock()
	return backlog, c, func() {
		b.mu.Lock()
		delete(b.subs, c)
		b.mu.Unlock()
	}
}

// close ends every stream.
func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
}
