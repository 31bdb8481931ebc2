package probe

// Window is the sliding window of one target's last results. The zero
// Window is unusable; use NewWindow.
type Window struct {
	ring    []bool
	pos     int
	need    int
	passes  int
	started bool
	healthy bool
}

// NewWindow returns a window of size results, healthy while at least need
// of them passed. size and need are clamped to at least 1 and need to size.
func NewWindow(size, need int) *Window {
	size = max(size, 1)
	need = min(max(need, 1), size)
	return &Window{ring: make([]bool, size), need: need}
}

// Add records a result and reports whether the health changed. The first
// result fills the whole window (and always reports a change, from unknown).
func (w *Window) Add(pass bool) (changed bool) {
	if !w.started {
		w.started = true
		for i := range w.ring {
			w.ring[i] = pass
		}
		if pass {
			w.passes = len(w.ring)
		}
		w.healthy = w.passes >= w.need
		return true
	}
	if w.ring[w.pos] {
		w.passes--
	}
	w.ring[w.pos] = pass
	if pass {
		w.passes++
	}
	w.pos = (w.pos + 1) % len(w.ring)
	was := w.healthy
	w.healthy = w.passes >= w.need
	return was != w.healthy
}

// Healthy reports whether at least need of the last size results passed.
// It is false before the first result.
func (w *Window) Healthy() bool { return w.healthy }

// Started reports whether a result was recorded.
func (w *Window) Started() bool { return w.started }

// Passes returns how many results in the window passed.
func (w *Window) Passes() int { return w.passes }

// Size returns the window's size.
func (w *Window) Size() int { return len(w.ring) }
