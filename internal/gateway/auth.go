package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// clientKey is a topology key with its limits. Keys are found by the
// SHA-256 of the presented secret, then compared in constant time, so
// neither the map nor the comparison leaks the secret through timing.
type clientKey struct {
	name string
	hash [32]byte
	rpm  *bucket // nil: unlimited
	tpm  *bucket // nil: unlimited
}

func newKeys(ks []topology.Key) map[[32]byte]*clientKey {
	m := make(map[[32]byte]*clientKey, len(ks))
	for _, k := range ks {
		ck := &clientKey{name: k.Name, hash: sha256.Sum256([]byte(k.Key.Value()))}
		if k.RPM > 0 {
			ck.rpm = newBucket(k.RPM)
		}
		if k.TPM > 0 {
			ck.tpm = newBucket(k.TPM)
		}
		m[ck.hash] = ck
	}
	return m
}

// presentedKey returns the client's key from "Authorization: Bearer <key>"
// or the "api-key" header.
func presentedKey(r *http.Request) string {
	if v := r.Header.Get("Authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
		return ""
	}
	return r.Header.Get("Api-Key")
}

// authenticate returns the key the request presents, or a 401 *Error.
func (g *Gateway) authenticate(r *http.Request) (*clientKey, error) {
	secret := presentedKey(r)
	if secret == "" {
		return nil, errUnauthorized()
	}
	h := sha256.Sum256([]byte(secret))
	k, ok := g.keys[h]
	if !ok || subtle.ConstantTimeCompare(h[:], k.hash[:]) != 1 {
		return nil, errUnauthorized()
	}
	return k, nil
}

type keyNameCtx struct{}

// KeyName returns the name of the client key that authenticated the
// request, for handlers registered with HandleClient; "" elsewhere.
func KeyName(ctx context.Context) string {
	s, _ := ctx.Value(keyNameCtx{}).(string)
	return s
}

// admit charges one request and tokens estimated tokens to the key's
// limits, or returns a 429 *Error with the wait until they would fit.
func (k *clientKey) admit(now time.Time, tokens int) error {
	if k.rpm != nil {
		if wait, ok := k.rpm.take(now, 1); !ok {
			return errKeyLimited(k.name, "requests", "RPM", k.rpm.limit, wait)
		}
	}
	if k.tpm != nil && tokens > 0 {
		if wait, ok := k.tpm.take(now, tokens); !ok {
			if k.rpm != nil {
				k.rpm.adjust(now, -1) // the request was not admitted
			}
			return errKeyLimited(k.name, "tokens", "TPM", k.tpm.limit, wait)
		}
	}
	return nil
}

// settle corrects the key's token count once the real usage is known:
// delta is actual minus estimated (negative refunds).
func (k *clientKey) settle(now time.Time, delta int) {
	if k.tpm != nil && delta != 0 {
		k.tpm.adjust(now, delta)
	}
}

func errKeyLimited(name, typ, unit string, limit int, wait time.Duration) *Error {
	return &Error{
		Status: http.StatusTooManyRequests, Type: typ, Code: "rate_limit_exceeded", RetryAfter: wait,
		Message: fmt.Sprintf("Rate limit reached for key %q on %s per minute (%s): limit %d. Please try again in %s.",
			name, typ, unit, limit, wait.Round(time.Millisecond)),
	}
}

// bucket is a token bucket that holds a minute's allowance and refills
// continuously: limit per minute, bursts up to limit. Its balance may go
// negative when settle charges more than was estimated; the key then waits.
type bucket struct {
	limit  int
	perSec float64

	mu    sync.Mutex
	avail float64
	last  time.Time
}

func newBucket(perMinute int) *bucket {
	return &bucket{limit: perMinute, perSec: float64(perMinute) / 60, avail: float64(perMinute)}
}

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
		return
	}
	if el := now.Sub(b.last); el > 0 {
		b.avail = min(float64(b.limit), b.avail+el.Seconds()*b.perSec)
		b.last = now
	}
}

// take removes n tokens (at most the bucket's size, so one large request
// is not refused forever) or reports how long until they are there.
func (b *bucket) take(now time.Time, n int) (time.Duration, bool) {
	want := float64(min(n, b.limit))
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	// Refilling in steps adds float rounding error; a millionth of a
	// token is no real allowance.
	if b.avail+1e-6 >= want {
		b.avail -= want
		return 0, true
	}
	// Round to whole nanoseconds first, so 1/(2/60) is 30s, not 30s+1ns.
	ns := math.Round((want - b.avail) / b.perSec * 1e9)
	return time.Duration(ns), false
}

// adjust charges delta more tokens (negative refunds).
func (b *bucket) adjust(now time.Time, delta int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.avail = min(float64(b.limit), b.avail-float64(delta))
}
