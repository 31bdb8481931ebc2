package linkproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	readSize = 32 << 10 // bytes per read, the largest chunk
	queueLen = 1024     // chunks per direction; MaxInflight usually binds first
)

// link is one client connection and its upstream connection.
type link struct {
	p      *Proxy
	client net.Conn
	ctx    context.Context // cancelled when the link closes
	cancel context.CancelFunc
	once   sync.Once

	mu       sync.Mutex
	upstream net.Conn
	closing  bool
}

func newLink(p *Proxy, client net.Conn) *link {
	l := &link{p: p, client: client}
	l.ctx, l.cancel = context.WithCancel(p.ctx)
	return l
}

// run dials the upstream and forwards both directions until both end.
func (l *link) run() {
	defer l.p.forget(l)
	defer l.close(false)
	// A frozen network does not carry the upstream handshake either.
	if err := l.waitFlow(); err != nil {
		return
	}
	up, err := l.p.dial(l.ctx)
	if err != nil {
		if l.ctx.Err() == nil {
			l.p.log.Warn("linkproxy dial upstream", "upstream", strings.Join(l.p.Upstreams(), ","), "err", err)
		}
		return
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		up.Close()
		return
	}
	l.upstream = up
	l.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { l.pipe(up, l.client, &l.p.bytesUp) })
	wg.Go(func() { l.pipe(l.client, up, &l.p.bytesDown) })
	wg.Wait()
}

// close ends the link once; rst makes the peers see a reset.
func (l *link) close(rst bool) {
	l.once.Do(func() {
		l.cancel()
		l.mu.Lock()
		l.closing = true
		up := l.upstream
		l.mu.Unlock()
		for _, c := range []net.Conn{l.client, up} {
			switch {
			case c == nil:
			case rst:
				reset(c)
			default:
				c.Close()
			}
		}
	})
}

// waitFlow blocks while the link is blackholed.
func (l *link) waitFlow() error {
	if !l.p.blackholed.Load() {
		return nil
	}
	select {
	case <-l.p.flowing():
		return nil
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

// chunk is bytes read from one side, due for delivery to the other.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe forwards src to dst, delaying every chunk until it is due. The
// reader stamps chunks as they arrive and the writer delivers them in order
// at their due time, so chunks travel through the delay concurrently. It
// returns when src has ended and everything read was delivered, or when the
// link closes.
func (l *link) pipe(dst, src net.Conn, delivered *atomic.Int64) {
	q := make(chan chunk, queueLen)
	drained := make(chan struct{}, 1)
	var inflight atomic.Int64
	var readErr error // written by the reader before it closes q

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(q)
		buf := make([]byte, readSize)
		maxInflight := int64(l.p.cfg.MaxInflight)
		for {
			for inflight.Load() >= maxInflight {
				select {
				case <-drained:
				case <-l.ctx.Done():
					readErr = l.ctx.Err()
					return
				}
			}
			n, err := src.Read(buf)
			if n > 0 {
				d := l.p.delay()
				if d == 0 && inflight.Load() == 0 && !l.p.blackholed.Load() {
					// Nothing is queued or being written, so nothing can be
					// overtaken: deliver from here and skip the hand-off.
					if _, werr := dst.Write(buf[:n]); werr != nil {
						readErr = werr
						return
					}
					delivered.Add(int64(n))
					if err != nil {
						readErr = err
						return
					}
					continue
				}
				// The queue is FIFO, so a chunk drawn a shorter delay than
				// the one before it waits for it: jitter never reorders.
				due := time.Now().Add(d)
				inflight.Add(int64(n))
				select {
				case q <- chunk{data: bytes.Clone(buf[:n]), due: due}:
				case <-l.ctx.Done():
					readErr = l.ctx.Err()
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	})

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.ctx.Done():
				timer.Stop()
				return
			}
		}
		if err := l.waitFlow(); err != nil {
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close(false)
			return
		}
		delivered.Add(int64(len(c.data)))
		inflight.Add(-int64(len(c.data)))
		select {
		case drained <- struct{}{}:
		default:
		}
	}
	// q is closed, so the reader has ended and readErr is set.
	if !errors.Is(readErr, io.EOF) {
		l.close(false)
		return
	}
	// An orderly end of one direction: pass it on and let the other finish.
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	l.close(false)
}
