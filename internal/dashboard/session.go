package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// CodeTTL is how long an unredeemed dashboard code stays valid.
const CodeTTL = 24 * time.Hour

// maxCodes bounds the codes waiting to be redeemed; minting more forgets
// the oldest.
const maxCodes = 32

// What a one-time code may be spent on.
const (
	PurposeSession = "session" // exchanged once for the admin token
	PurposeReport  = "report"  // opens the latest drill report once
)

// codes are one-time codes: whoever holds one may spend it once, for its
// purpose. They let a URL be printed on a terminal, or opened in a new
// window, without the admin token ever appearing in a URL.
type codes struct {
	mu  sync.Mutex
	m   map[string]codeEntry
	now func() time.Time
}

type codeEntry struct {
	expires time.Time
	purpose string
}

func newCodes(now func() time.Time) *codes {
	return &codes{m: map[string]codeEntry{}, now: now}
}

// mint returns a new code (128 random bits, URL-safe) for purpose.
func (c *codes) mint(purpose string) string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	code := base64.RawURLEncoding.EncodeToString(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	for len(c.m) >= maxCodes {
		var oldest string
		for k, e := range c.m {
			if oldest == "" || e.expires.Before(c.m[oldest].expires) {
				oldest = k
			}
		}
		delete(c.m, oldest)
	}
	c.m[code] = codeEntry{expires: now.Add(CodeTTL), purpose: purpose}
	return code
}

// redeem reports whether code is valid for purpose, and spends it (a code
// presented for the wrong purpose is spent too).
func (c *codes) redeem(code, purpose string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[code]
	if !ok {
		return false
	}
	delete(c.m, code)
	return e.purpose == purpose && c.now().Before(e.expires)
}
