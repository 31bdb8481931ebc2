package dashboard

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// requestsMetric is the edge's counter of answered requests, labelled by
// origin (the region that answered; "none" when the edge answered itself)
// and status code.
const requestsMetric = "understudy_edge_requests_total"

// EdgeOrigin is the origin label of requests the edge answered itself.
const EdgeOrigin = "none"

// counter is one origin's cumulative requests and server errors.
type counter struct {
	Total  float64
	Errors float64 // 5xx and 429
}

// parseRequests reads the requests counter from a Prometheus text
// exposition, summed over codes per origin.
func parseRequests(r io.Reader) (map[string]counter, error) {
	out := map[string]counter{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, requestsMetric)
		if !ok || !strings.HasPrefix(rest, "{") {
			continue
		}
		labels, value, err := splitSample(rest)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		origin, code := labels["origin"], labels["code"]
		if origin == "" {
			continue
		}
		c := out[origin]
		c.Total += value
		if strings.HasPrefix(code, "5") || code == "429" {
			c.Errors += value
		}
		out[origin] = c
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// splitSample parses `{k="v",...} value [timestamp]`.
func splitSample(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	i := 1 // after '{'
	for {
		for i < len(s) && (s[i] == ',' || s[i] == ' ') {
			i++
		}
		if i >= len(s) {
			return nil, 0, fmt.Errorf("unterminated labels")
		}
		if s[i] == '}' {
			i++
			break
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return nil, 0, fmt.Errorf("malformed label")
		}
		name := s[i : i+eq]
		i += eq + 2
		var v strings.Builder
		for {
			if i >= len(s) {
				return nil, 0, fmt.Errorf("unterminated label value")
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i])
				}
				i++
				continue
			}
			v.WriteByte(c)
			i++
		}
		labels[name] = v.String()
	}
	fields := strings.Fields(s[i:])
	if len(fields) == 0 {
		return nil, 0, fmt.Errorf("no value")
	}
	value, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return nil, 0, fmt.Errorf("value: %w", err)
	}
	return labels, value, nil
}

// sample is the edge's counters at one moment.
type sample struct {
	at time.Time
	by map[string]counter
}

// Rate is what an origin answers per second.
type Rate struct {
	RPS       float64 `json:"rps"`
	ErrorsPS  float64 `json:"errors_per_s"`
	Available bool    `json:"available"` // false until two samples span the window
}

// rates compares the newest sample with the oldest one inside window (at
// least minSpan older); ok is false until two samples span that much. A
// counter that went down (the edge restarted) counts from zero.
func rates(samples []sample, window, minSpan time.Duration) (out map[string]Rate, ok bool) {
	out = map[string]Rate{}
	if len(samples) < 2 {
		return out, false
	}
	last := samples[len(samples)-1]
	var first *sample
	for i := range samples[:len(samples)-1] {
		s := &samples[i]
		if last.at.Sub(s.at) <= window {
			first = s
			break
		}
	}
	if first == nil || last.at.Sub(first.at) < minSpan {
		return out, false
	}
	dt := last.at.Sub(first.at).Seconds()
	for origin, c := range last.by {
		p := first.by[origin]
		dTotal, dErr := c.Total-p.Total, c.Errors-p.Errors
		if dTotal < 0 || dErr < 0 { // counter reset
			dTotal, dErr = c.Total, c.Errors
		}
		out[origin] = Rate{RPS: round2(dTotal / dt), ErrorsPS: round2(dErr / dt), Available: true}
	}
	return out, true
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// Point is one second of the traffic chart: requests per second by origin.
type Point struct {
	At  int64              `json:"t"` // unix milliseconds
	RPS map[string]float64 `json:"rps"`
}
