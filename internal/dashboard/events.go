package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/edge"
)

// Event is an edge event as the page lists it: consecutive retries from
// the same origin are folded into one entry with a count.
type Event struct {
	edge.Event
	Count int `json:"count"`
}

// maxEvents is how many recent edge events the dashboard keeps.
const maxEvents = 40

// addEvent appends ev to the kept events; s.mu is held.
func (s *Server) addEventLocked(ev edge.Event) {
	if n := len(s.events); n > 0 && ev.Kind == "retry" {
		if last := &s.events[n-1]; last.Kind == "retry" && last.Origin == ev.Origin {
			last.Count++
			last.Seq, last.Time, last.Message = ev.Seq, ev.Time, ev.Message
			return
		}
	}
	if len(s.events) == maxEvents {
		s.events = append(s.events[:0], s.events[1:]...)
	}
	s.events = append(s.events, Event{Event: ev, Count: 1})
}

// followEvents reads the edge's event stream until ctx ends, reconnecting
// with a backoff and resuming after the last event seen.
func (s *Server) followEvents(ctx context.Context) {
	var last uint64
	backoff := 500 * time.Millisecond
	for {
		n, err := s.readEvents(ctx, last, func(ev edge.Event) {
			last = ev.Seq
			s.mu.Lock()
			s.addEventLocked(ev)
			s.mu.Unlock()
		})
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			backoff = 500 * time.Millisecond
		}
		s.mu.Lock()
		s.eventsErr = ""
		if err != nil {
			s.eventsErr = err.Error()
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// readEvents reads one connection of the edge's SSE stream, calling fn for
// each event, and returns how many it read.
func (s *Server) readEvents(ctx context.Context, after uint64, fn func(edge.Event)) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.t.Edge.URL+"/admin/events", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.t.Admin.Token.Value())
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	}
	resp, err := s.stream.Do(req)
	if err != nil {
		return 0, fmt.Errorf("edge events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("edge events: %s", resp.Status)
	}
	return readSSE(resp.Body, fn)
}

// readSSE decodes `data:` lines of an SSE stream as edge events.
func readSSE(r io.Reader, fn func(edge.Event)) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data strings.Builder
	n := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				var ev edge.Event
				if json.Unmarshal([]byte(data.String()), &ev) == nil {
					fn(ev)
					n++
				}
				data.Reset()
			}
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	return n, sc.Err()
}
