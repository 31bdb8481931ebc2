package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/understudy/understudy/internal/oaierr"
)

// AdminClient calls a region gateway's agent admin API (GET and PUT
// /admin/agents) with the admin token.
type AdminClient struct {
	// BaseURL is the gateway's URL (topology regions[].url). Required.
	BaseURL string
	// Token is the admin token. Required.
	Token string
	// HTTP is the client. Default http.DefaultClient.
	HTTP *http.Client
}

func (c *AdminClient) do(ctx context.Context, method string, body []byte, out any) error {
	url := strings.TrimRight(c.BaseURL, "/") + "/admin/agents"
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if res.StatusCode != http.StatusOK {
		var e oaierr.Body
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %d: %s", method, url, res.StatusCode, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, url, res.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, url, err)
	}
	return nil
}

// List returns the latest applied version of every agent in the region.
func (c *AdminClient) List(ctx context.Context) ([]AppliedAgent, error) {
	var l AgentList
	if err := c.do(ctx, http.MethodGet, nil, &l); err != nil {
		return nil, err
	}
	return l.Data, nil
}

// Apply applies defs to the region in one write and reports, per agent,
// whether it was applied or unchanged.
func (c *AdminClient) Apply(ctx context.Context, defs []*Definition) ([]ApplyResult, error) {
	body, err := json.Marshal(defs)
	if err != nil {
		return nil, fmt.Errorf("encode definitions: %w", err)
	}
	var res ApplyResults
	if err := c.do(ctx, http.MethodPut, body, &res); err != nil {
		return nil, err
	}
	return res.Results, nil
}

// Change kinds of Diff, in the words of the drift reports.
const (
	// Added: in the files, not applied in the region.
	Added = "Added"
	// Removed: applied in the region, not in the files.
	Removed = "Removed"
	// NotEqual: in both with different content (hash).
	NotEqual = "NotEqual"
)

// Change is one difference between the definitions in files and the
// agents applied to a region.
type Change struct {
	Kind string
	Name string
	// File is the definition in the files (nil for Removed).
	File *Definition
	// Region is the applied agent (nil for Added).
	Region *AppliedAgent
}

func (c Change) String() string {
	switch c.Kind {
	case Added:
		return fmt.Sprintf("Added %s: version %s hash %s (%s) is not applied", c.Name, c.File.Version(), short(c.File.Hash()), c.File.File)
	case Removed:
		return fmt.Sprintf("Removed %s: the region has version %s hash %s, which no file defines", c.Name, c.Region.Version, short(c.Region.Hash))
	default:
		return fmt.Sprintf("NotEqual %s: file version %s hash %s (%s), region version %s hash %s",
			c.Name, c.File.Version(), short(c.File.Hash()), c.File.File, c.Region.Version, short(c.Region.Hash))
	}
}

// short is a hash's first 12 digits, for people.
func short(hash string) string { return hash[:min(12, len(hash))] }

// Diff compares definitions with the agents applied to a region by name
// and content hash; the result is sorted by name.
func Diff(defs []*Definition, applied []AppliedAgent) []Change {
	region := map[string]*AppliedAgent{}
	for i := range applied {
		region[applied[i].Name] = &applied[i]
	}
	var out []Change
	seen := map[string]bool{}
	for _, d := range defs {
		seen[d.Name] = true
		switch a := region[d.Name]; {
		case a == nil:
			out = append(out, Change{Kind: Added, Name: d.Name, File: d})
		case a.Hash != d.Hash():
			out = append(out, Change{Kind: NotEqual, Name: d.Name, File: d, Region: a})
		}
	}
	for i := range applied {
		if !seen[applied[i].Name] {
			out = append(out, Change{Kind: Removed, Name: applied[i].Name, Region: &applied[i]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
