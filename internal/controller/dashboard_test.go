package controller

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/understudy/understudy/internal/topology"
)

// TestDashboardMounted: the controller serves the dashboard's page to
// anyone on loopback, and its data and actions only with the admin token,
// from loopback, from the same origin.
func TestDashboardMounted(t *testing.T) {
	const token = "adm-ctl-0123456789abcdef"
	dir := t.TempDir()
	src := topology.ExampleYAML(topology.ExampleOptions{Key: "sk-ctl-0123456789abcdef", AdminToken: token,
		ReplicationSecret: "rep-ctl-0123456789abcdef", Ports: topology.DefaultPorts})
	path := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := c.Handler()
	tests := []struct {
		name, method, path string
		token              bool
		remote             string
		site               string // Sec-Fetch-Site
		want               int
		body               string // a substring of the answer
	}{
		{"page", "GET", "/", false, "", "", 200, `<script src="/assets/app.js"`},
		{"state", "GET", "/v1/dashboard/state", true, "", "same-origin", 200, `"pattern":"hot-warm"`},
		{"state without token", "GET", "/v1/dashboard/state", false, "", "", 401, "admin token"},
		{"state from a remote peer", "GET", "/v1/dashboard/state", true, "192.0.2.1:4000", "", 403, "loopback"},
		{"mint a link from the page", "POST", "/v1/dashboard/codes", true, "", "same-origin", 200, `"url":"http://127.0.0.1:7070/#code=`},
		{"mint a link from another site", "POST", "/v1/dashboard/codes", true, "", "cross-site", 403, ""},
		{"region action from another site", "POST", "/v1/dashboard/regions/eastus2/down", true, "", "cross-site", 403, ""},
		{"failover from another site", "POST", "/v1/failover", true, "", "cross-site", 403, ""},
		{"region action without up", "POST", "/v1/dashboard/regions/eastus2/down", true, "", "same-origin", 409, "up.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.RemoteAddr = "127.0.0.1:4000"
			if tc.remote != "" {
				req.RemoteAddr = tc.remote
			}
			if tc.token {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			if tc.site != "" {
				req.Header.Set("Sec-Fetch-Site", tc.site)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("%s %s = %d %.300s; want %d with %q", tc.method, tc.path, w.Code, w.Body.String(), tc.want, tc.body)
			}
		})
	}

	// The state carries the controller's own status.
	req := httptest.NewRequest("GET", "/v1/dashboard/state", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var st struct {
		Controller Status `json:"controller"`
		Regions    []struct{ Name string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(len(st.Controller.Regions), st.Regions); got != "2 [{eastus2} {centralus}]" {
		t.Errorf("state: %d controller regions, regions %v", len(st.Controller.Regions), st.Regions)
	}
}
