package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cooldownHint reads how long a backend that answered 429 asks to be left
// alone: retry-after-ms, else Retry-After (seconds or an HTTP date), else
// the longer of x-ratelimit-reset-requests and x-ratelimit-reset-tokens
// (OpenAI writes durations such as "1s" or "6m0s", Azure whole seconds).
// It returns -1 when the answer has no hint; the pool then uses
// gateway.cooldown_default with jitter. Callers cap the result at
// gateway.cooldown_max.
func cooldownHint(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return time.Duration(min(s, 1<<31)) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	best := time.Duration(-1)
	for _, k := range []string{"X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens"} {
		if d, ok := parseReset(h.Get(k)); ok && d > best {
			best = d
		}
	}
	return best
}

// parseReset reads "1s", "6m0s", "20ms" or a number of seconds.
func parseReset(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 && s < 1<<31 {
		return time.Duration(s * float64(time.Second)), true
	}
	return 0, false
}
