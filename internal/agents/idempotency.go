package agents

import (
	"context"
	"sync"
)

// keyLocks is a mutex per idempotency key (scope + key). A turn with an
// Idempotency-Key holds its key's lock from the stored-response lookup to
// the answer, so concurrent duplicates queue behind the first: only one
// runs the model and writes, the others then find its stored response and
// replay it. Across processes the store is the backstop: CreateResponse
// refuses a second response under the same key in the turn's single
// write, so at most one is ever stored.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders and waiters
}

// lock takes key's lock, waiting at most until ctx ends; unlock releases it.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
	return func() {
		<-l.ch
		k.release(key, l)
	}, nil
}

func (k *keyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.m, key)
	}
}

// held reports how many keys have holders or waiters (for tests).
func (k *keyLocks) held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
