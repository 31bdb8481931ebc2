package modelsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Config describes the model a Server impersonates and its latency profile
// and limits. The zero value is usable.
type Config struct {
	// Model is the model name reported by the server, e.g. "gpt-4.1-mini".
	// Default "gpt-4.1-mini".
	Model string
	// Version is the model version (snapshot date), e.g. "2025-04-14". The
	// model field of every answer is "<Model>-<Version>", or just Model when
	// Version is empty. Default "".
	Version string
	// TTFT is the delay before the first token, and so before response
	// headers. Default 0 (no delay, no timer).
	TTFT time.Duration
	// TokensPerSecond paces tokens after the first: token i (0-based) is due
	// at TTFT + i/TokensPerSecond. Default 0: as fast as possible.
	TokensPerSecond float64
	// MaxTokens is the answer length in tokens when the request sets neither
	// max_tokens nor max_completion_tokens. Default 16.
	MaxTokens int
	// RPM is the number of model requests admitted per clock minute. Default
	// 0: unlimited.
	RPM int
	// TPM is the number of tokens (prompt plus answer) admitted per clock
	// minute. Default 0: unlimited.
	TPM int
	// AdminToken, when set, is required as "Authorization: Bearer <token>"
	// on /admin/*. Default "": admin endpoints are open.
	AdminToken string
}

// DefaultModel is the model name used when Config.Model is empty.
const DefaultModel = "gpt-4.1-mini"

// DefaultMaxTokens is the answer length used when Config.MaxTokens is 0.
const DefaultMaxTokens = 16

// maxOutputTokens bounds the answer length a request may ask for.
const maxOutputTokens = 1 << 16

// Validate reports the first invalid field of c, by name.
func (c Config) Validate() error {
	switch {
	case c.TTFT < 0:
		return fmt.Errorf("ttft: must not be negative, got %s", c.TTFT)
	case c.TokensPerSecond < 0 || math.IsNaN(c.TokensPerSecond) || math.IsInf(c.TokensPerSecond, 0):
		return fmt.Errorf("tokens_per_second: must be a finite number >= 0, got %v", c.TokensPerSecond)
	case c.MaxTokens < 0 || c.MaxTokens > maxOutputTokens:
		return fmt.Errorf("max_tokens: must be between 0 (default %d) and %d, got %d", DefaultMaxTokens, maxOutputTokens, c.MaxTokens)
	case c.RPM < 0:
		return fmt.Errorf("rpm: must not be negative, got %d", c.RPM)
	case c.TPM < 0:
		return fmt.Errorf("tpm: must not be negative, got %d", c.TPM)
	}
	return nil
}

// withDefaults fills defaults and treats invalid values as their default, so
// that New never fails; callers that want errors use Validate first.
func (c Config) withDefaults() Config {
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.MaxTokens <= 0 || c.MaxTokens > maxOutputTokens {
		c.MaxTokens = DefaultMaxTokens
	}
	c.TTFT = max(c.TTFT, 0)
	if !(c.TokensPerSecond > 0) || math.IsInf(c.TokensPerSecond, 0) {
		c.TokensPerSecond = 0
	}
	c.RPM = max(c.RPM, 0)
	c.TPM = max(c.TPM, 0)
	return c
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "2s" or "150ms".
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"2s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// Faults are the failures a Server injects. The zero value injects nothing.
// Fractions are deterministic: the n-th request (1-based) that reaches a
// fault's check since the faults were last set fails when
// floor(n*rate) > floor((n-1)*rate). Checks run in this order, each counting
// only the requests that passed the previous ones: Hang, Latency, Config
// RPM/TPM, RateLimitRate, ErrorRate.
type Faults struct {
	// ErrorRate is the fraction (0..1) of model requests answered with
	// ErrorStatus.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatus is the HTTP status of those errors. Default 500.
	ErrorStatus int `json:"error_status,omitempty"`
	// ErrorCode is the OpenAI error code put in the error body, e.g.
	// "context_length_exceeded" or "content_filter". Default: null.
	ErrorCode string `json:"error_code,omitempty"`
	// RateLimitRate is the fraction (0..1) of model requests answered 429.
	RateLimitRate float64 `json:"rate_limit_rate,omitempty"`
	// RetryAfter is sent as Retry-After on those 429s, in whole seconds
	// rounded up; the header is omitted when 0.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// Hang accepts a request, reads its body and never answers until the
	// client goes away.
	Hang bool `json:"hang,omitempty"`
	// Latency is added before response headers of every model request.
	Latency Duration `json:"latency,omitempty"`
	// CutAfter, for streams, aborts the connection after N content chunks
	// (no final chunk, no [DONE]); for other answers it aborts after the
	// response headers, before the body. 0: off.
	CutAfter int `json:"cut_after,omitempty"`
	// NoDone ends streams cleanly but without "data: [DONE]".
	NoDone bool `json:"no_done,omitempty"`
	// Malformed sends one garbage line ("data: {not json") after the first
	// chunk of a stream.
	Malformed bool `json:"malformed,omitempty"`
	// StallAfter, for streams, stops sending after N content chunks and keeps
	// the connection open until the client leaves. 0: off.
	StallAfter int `json:"stall_after,omitempty"`
	// Version is reported instead of Config.Version (model field,
	// x-modelsim-version header, /v1/models). Default "": Config.Version.
	Version string `json:"version,omitempty"`
}

// Validate reports the first invalid field of f, by its JSON name.
func (f Faults) Validate() error {
	rate := func(name string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%s: must be between 0 and 1, got %v", name, v)
		}
		return nil
	}
	if err := rate("error_rate", f.ErrorRate); err != nil {
		return err
	}
	if err := rate("rate_limit_rate", f.RateLimitRate); err != nil {
		return err
	}
	switch {
	case f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599):
		return fmt.Errorf("error_status: must be 0 (default 500) or between 400 and 599, got %d", f.ErrorStatus)
	case f.RetryAfter < 0:
		return fmt.Errorf("retry_after: must not be negative, got %s", time.Duration(f.RetryAfter))
	case f.Latency < 0:
		return fmt.Errorf("latency: must not be negative, got %s", time.Duration(f.Latency))
	case f.CutAfter < 0:
		return fmt.Errorf("cut_after: must not be negative, got %d", f.CutAfter)
	case f.StallAfter < 0:
		return fmt.Errorf("stall_after: must not be negative, got %d", f.StallAfter)
	}
	return nil
}

// ParseFaults reads faults from JSON strictly: unknown fields, trailing data
// and invalid values are errors.
func ParseFaults(data []byte) (Faults, error) {
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Faults{}, fmt.Errorf("parse faults: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Faults{}, errors.New("parse faults: trailing data after the JSON object")
	}
	if err := f.Validate(); err != nil {
		return Faults{}, fmt.Errorf("parse faults: %w", err)
	}
	return f, nil
}

// hit reports whether the n-th request (1-based) fails at rate. A tolerance
// of 1e-9 makes products that are whole numbers in decimal (0.29*100) count
// as whole in binary floating point too.
func hit(n uint64, rate float64) bool {
	const eps = 1e-9
	return math.Floor(float64(n)*rate+eps) > math.Floor(float64(n-1)*rate+eps)
}
