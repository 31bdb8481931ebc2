package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// Config is how targets are probed.
type Config struct {
	// Method is GET or HEAD. Default GET (a GET body carries role and epoch).
	Method string
	// Path is appended to each target's URL. Default /readyz.
	Path string
	// Interval between two probes of one target. Default 1s.
	Interval time.Duration
	// Timeout bounds one probe, body included. Default 500ms.
	Timeout time.Duration
	// SampleSize is how many recent results count. Default 4.
	SampleSize int
	// SuccessesRequired of the last SampleSize results make a target
	// healthy. Default 3.
	SuccessesRequired int
}

// FromTopology returns the probe settings of a topology.
func FromTopology(p topology.Probes) Config {
	return Config{
		Method:            p.Method,
		Path:              p.Path,
		Interval:          p.Interval.D(),
		Timeout:           p.Timeout.D(),
		SampleSize:        p.SampleSize,
		SuccessesRequired: p.SuccessfulSamplesRequired,
	}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	if c.Path == "" {
		c.Path = "/readyz"
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.SampleSize <= 0 {
		c.SampleSize = 4
	}
	if c.SuccessesRequired <= 0 {
		c.SuccessesRequired = min(3, c.SampleSize)
	}
	c.SuccessesRequired = min(c.SuccessesRequired, c.SampleSize)
	return c
}

// FailuresToUnhealthy is how many consecutive failed probes turn a healthy
// target (with a window of passes) unhealthy: SampleSize-SuccessesRequired+1.
func (c Config) FailuresToUnhealthy() int { return c.SampleSize - c.SuccessesRequired + 1 }

// DetectionWindow is the worst case from a target failing just after a
// passing probe to the probes declaring it unhealthy: FailuresToUnhealthy
// probes an Interval apart, the last one failing only at its Timeout.
func (c Config) DetectionWindow() time.Duration {
	return time.Duration(c.FailuresToUnhealthy())*c.Interval + c.Timeout
}

// RecoveryWindow is the least time from a failed target recovering (its
// window full of failures) to the probes declaring it healthy:
// SuccessesRequired passing probes an Interval apart.
func (c Config) RecoveryWindow() time.Duration {
	return time.Duration(c.SuccessesRequired) * c.Interval
}

// Result is the outcome of one probe.
type Result struct {
	// Start is when the probe was sent, on the Monitor's clock.
	Start time.Time `json:"start"`
	// Latency is from sending the request to reading the body's last byte.
	Latency time.Duration `json:"latency_ns"`
	// Status is the HTTP status, 0 when no response arrived.
	Status int `json:"status"`
	// OK is true only for 200 read completely within the timeout.
	OK bool `json:"ok"`
	// Err says why a probe failed; empty when OK.
	Err string `json:"error,omitempty"`
	// Readiness is the JSON body, when there was one.
	Readiness
}

// Readiness is the part of a gateway's /readyz body the probes record.
// Fields are zero when the body lacks them (a HEAD probe has no body).
type Readiness struct {
	// HasBody reports whether a JSON body was decoded.
	HasBody  bool   `json:"-"`
	Region   string `json:"region,omitempty"`
	Role     string `json:"role,omitempty"`
	Epoch    int64  `json:"epoch,omitempty"`
	Draining bool   `json:"draining,omitempty"`
}

// maxBody bounds the probe body read.
const maxBody = 64 << 10

// Checker sends probes over HTTP.
type Checker struct {
	cfg    Config
	client *http.Client
}

// NewChecker returns a Checker with a transport that opens a new connection
// for every probe. transport may be nil.
func NewChecker(cfg Config, transport *http.Transport) *Checker {
	cfg = cfg.withDefaults()
	if transport == nil {
		transport = &http.Transport{
			DialContext:       (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
			DisableKeepAlives: true,
			// Probe what a client would get, bytes on the wire included.
			DisableCompression: true,
		}
	} else {
		transport = transport.Clone()
		transport.DisableKeepAlives = true
	}
	return &Checker{cfg: cfg, client: &http.Client{
		Transport: transport,
		// A redirect is not a 200: the probe fails instead of following it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Check probes baseURL+Path once, within ctx and the configured timeout.
// Start is left for the caller (the Monitor stamps it with its clock).
func (c *Checker) Check(ctx context.Context, baseURL string) Result {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var r Result
	req, err := http.NewRequestWithContext(ctx, c.cfg.Method, strings.TrimSuffix(baseURL, "/")+c.cfg.Path, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req.Header.Set("User-Agent", "understudy-probe")
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		r.Latency = time.Since(start)
		r.Err = describe(ctx, err)
		return r
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	r.Latency = time.Since(start)
	r.Status = resp.StatusCode
	if err != nil {
		r.Err = "read body: " + describe(ctx, err)
		return r
	}
	var rd Readiness
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &rd) == nil {
		rd.HasBody = true
		r.Readiness = rd
	}
	if resp.StatusCode != http.StatusOK {
		r.Err = fmt.Sprintf("status %d", resp.StatusCode)
		return r
	}
	r.OK = true
	return r
}

func describe(ctx context.Context, err error) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}
