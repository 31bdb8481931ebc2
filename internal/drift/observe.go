package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/replication"
	"github.com/understudy/understudy/internal/store/postgres"
)

// observation is what one region's admin API said.
type observation struct {
	region string
	url    string
	// unreachable is set when the region could not be reached at all.
	unreachable error

	inv       *gateway.Inventory
	invErr    error
	agents    []agents.AppliedAgent
	agentsErr error
	state     *regionState
	stateErr  error
}

// regionState is the part of GET /admin/state (internal/region) drift
// reads.
type regionState struct {
	Region      string                        `json:"region"`
	Role        string                        `json:"role"`
	Epoch       int64                         `json:"epoch"`
	Replication map[string]replication.Status `json:"replication"`
	SyncPeers   []string                      `json:"sync_peers"`
	// Engine is PostgreSQL streaming replication's state (engine transport).
	Engine *postgres.Streaming `json:"engine"`
}

// errNotServed: the region answered 404 for the endpoint (a gateway
// without it).
var errNotServed = errors.New("not served by this region (404)")

// unreachableError is a failure to get any HTTP answer.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// observe reads a region's inventory, agents and state in parallel.
func observe(ctx context.Context, c *http.Client, token, region, baseURL string) *observation {
	o := &observation{region: region, url: baseURL}
	base := strings.TrimRight(baseURL, "/")
	var wg sync.WaitGroup
	wg.Go(func() {
		var inv gateway.Inventory
		if o.invErr = getJSON(ctx, c, token, base+"/admin/inventory", &inv); o.invErr == nil {
			o.inv = &inv
		}
	})
	wg.Go(func() {
		var l agents.AgentList
		if o.agentsErr = getJSON(ctx, c, token, base+"/admin/agents", &l); o.agentsErr == nil {
			o.agents = l.Data
		}
	})
	wg.Go(func() {
		var st regionState
		if o.stateErr = getJSON(ctx, c, token, base+"/admin/state", &st); o.stateErr == nil {
			o.state = &st
		}
	})
	wg.Wait()
	var u1, u2, u3 *unreachableError
	if errors.As(o.invErr, &u1) && errors.As(o.agentsErr, &u2) && errors.As(o.stateErr, &u3) {
		o.unreachable = u1
	}
	return o
}

func getJSON(ctx context.Context, c *http.Client, token, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return &unreachableError{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &unreachableError{err: fmt.Errorf("read answer: %w", err)}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotServed
	case resp.StatusCode != http.StatusOK:
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
