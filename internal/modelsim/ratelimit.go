package modelsim

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/oaierr"
)

// limiter admits requests and tokens per clock minute (fixed windows aligned
// to the minute, like the per-minute quotas of Azure OpenAI deployments). A
// request is admitted when the window still has a request left (RPM) and its
// whole token cost fits in what is left (TPM). Rejected requests consume
// nothing.
type limiter struct {
	rpm, tpm int

	mu     sync.Mutex
	window time.Time // start of the current minute
	reqs   int       // admitted in window
	toks   int       // tokens admitted in window
}

// limitState is what a limiter reports after a decision.
type limitState struct {
	remReqs, remToks int
	reset            time.Duration // until the window ends
}

func (l *limiter) enabled() bool { return l.rpm > 0 || l.tpm > 0 }

// roll starts a new window if now is past the current one. l.mu is held.
func (l *limiter) roll(now time.Time) {
	if w := now.Truncate(time.Minute); !w.Equal(l.window) {
		l.window, l.reqs, l.toks = w, 0, 0
	}
}

func (l *limiter) stateLocked(now time.Time) limitState {
	return limitState{
		remReqs: max(l.rpm-l.reqs, 0),
		remToks: max(l.tpm-l.toks, 0),
		reset:   l.window.Add(time.Minute).Sub(now),
	}
}

// take admits one request of cost tokens, or not.
func (l *limiter) take(now time.Time, cost int) (limitState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	ok := (l.rpm == 0 || l.reqs < l.rpm) && (l.tpm == 0 || l.toks+cost <= l.tpm)
	if ok {
		l.reqs++
		l.toks += cost
	}
	return l.stateLocked(now), ok
}

// peek reports the state without taking anything.
func (l *limiter) peek(now time.Time) limitState {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	return l.stateLocked(now)
}

// setHeaders writes the x-ratelimit-* headers of the limits that are set.
func (l *limiter) setHeaders(h http.Header, st limitState) {
	reset := []string{(time.Duration(oaierr.CeilSeconds(st.reset)) * time.Second).String()}
	if l.rpm > 0 {
		h["X-Ratelimit-Limit-Requests"] = []string{strconv.Itoa(l.rpm)}
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.Itoa(st.remReqs)}
		h["X-Ratelimit-Reset-Requests"] = reset
	}
	if l.tpm > 0 {
		h["X-Ratelimit-Limit-Tokens"] = []string{strconv.Itoa(l.tpm)}
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.Itoa(st.remToks)}
		h["X-Ratelimit-Reset-Tokens"] = reset
	}
}
