package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// call sends a JSON request with the bearer token and decodes a JSON answer
// into out (when non-nil). A non-2xx answer is an error carrying its body.
func call(ctx context.Context, c *http.Client, method, url, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

// Readiness is what a gateway's /readyz body says (the fields the
// controller reads).
type Readiness struct {
	Ready    bool   `json:"ready"`
	Region   string `json:"region"`
	Draining bool   `json:"draining"`
	Role     string `json:"role"`
	Epoch    int64  `json:"epoch"`
	Position int64  `json:"position"`
	Writable bool   `json:"writable"`
	Primary  string `json:"primary"`
	// Quarantined counts the events a rejoined former primary set aside.
	Quarantined int `json:"quarantined"`
	// Replication lag per peer, from a primary.
	Replication map[string]struct {
		Events    int64   `json:"events"`
		Seconds   float64 `json:"seconds"`
		Connected bool    `json:"connected"`
	} `json:"replication"`
	// Engine is PostgreSQL's streaming replication state (engine
	// transport): synchronous, standbys_streaming, lag_bytes on a primary;
	// receiving, replay_lag_bytes on a standby.
	Engine map[string]any `json:"engine,omitempty"`
}

// probe GETs a gateway's /readyz; ok only on 200.
func probe(ctx context.Context, c *http.Client, url string, timeout time.Duration) (Readiness, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r Readiness
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return r, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r)
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("readyz answered %s", resp.Status)
	}
	return r, nil
}
