package gateway

// GET /admin/inventory: what the drift checks compare with the topology.
//
// Per deployment it lists the configuration this gateway runs and, per
// backend, what the backend itself says: the model and version it lists on
// GET {backend}/v1/models (asked once per inventory request, never on the
// request path) and the quota headers of its last answer. Those headers are
// read by a tap on the backend transport that costs a few map lookups per
// attempt and allocates nothing; parsing waits for the inventory request.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/internal/topology"
)

// Inventory is the body of GET /admin/inventory.
type Inventory struct {
	Region   string `json:"region"`
	Draining bool   `json:"draining"`
	// ConfigHash is RenderConfig(topology, region).Hash() of the topology
	// this gateway loaded.
	ConfigHash string `json:"config_hash"`
	// Config is the rendered configuration the hash covers.
	Config      RegionConfig          `json:"config"`
	Deployments []InventoryDeployment `json:"deployments"`
	// At is when the inventory was taken (the gateway's clock).
	At time.Time `json:"at"`
}

// InventoryDeployment is one deployment as this region runs it.
type InventoryDeployment struct {
	Name     string             `json:"name"`
	Model    string             `json:"model"`
	Version  string             `json:"version"`
	SKU      string             `json:"sku"`
	Capacity int                `json:"capacity"`
	Backends []InventoryBackend `json:"backends"`
}

// InventoryBackend is one backend: its configuration, its state in the
// pool and what it reports about itself.
type InventoryBackend struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Model is the name the backend serves the deployment under (topology
	// backends[].model).
	Model string `json:"model"`
	// State is healthy, probing, cooling or ejected; Serving is true for
	// healthy and probing (an attempt may use it).
	State    string        `json:"state"`
	Serving  bool          `json:"serving"`
	Reported ReportedModel `json:"reported"`
	// Quota is the backend's last answer's rate-limit headers; nil when it
	// has not answered (2xx or 429) since the gateway started.
	Quota *Quota `json:"quota"`
}

// Sources of ReportedModel.
const (
	// SourceModels: GET {backend}/v1/models, asked during the inventory.
	SourceModels = "v1/models"
	// SourceNone: the backend kind has no data-plane call that names a
	// deployment's model version (azure-openai).
	SourceNone = "none"
)

// ReportedModel is what a backend says it serves.
type ReportedModel struct {
	Source string `json:"source"`
	// Model and Version of the listed entry whose id is the backend's
	// model name (or of the only entry listed). Version comes from the
	// entry's "version" field (modelsim) or a dated id
	// ("gpt-4.1-mini-2025-04-14"); "" when the backend does not say.
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
	// Listed are the ids the backend listed (at most 20).
	Listed []string `json:"listed,omitempty"`
	// Error is why the backend could not be asked; Model is then "".
	Error string `json:"error,omitempty"`
}

// Quota is what a backend's last answer (2xx or 429) said about its rate
// limits, from the x-ratelimit-* headers. A nil limit means the answer
// had no such header: the backend advertises no limit of that kind.
type Quota struct {
	At                time.Time `json:"at"`
	Status            int       `json:"status"`
	LimitRequests     *int64    `json:"limit_requests,omitempty"`
	RemainingRequests *int64    `json:"remaining_requests,omitempty"`
	// ResetRequestsMs is x-ratelimit-reset-requests in milliseconds.
	ResetRequestsMs *int64 `json:"reset_requests_ms,omitempty"`
	LimitTokens     *int64 `json:"limit_tokens,omitempty"`
	RemainingTokens *int64 `json:"remaining_tokens,omitempty"`
	ResetTokensMs   *int64 `json:"reset_tokens_ms,omitempty"`
}

// RegionConfig is the part of a topology that decides how one region's
// gateway handles requests: the deployments, the region's backends, client
// key names and limits, admin exposure and the gateway settings. Secrets
// appear only as their ${ENV} reference or "<redacted>"; addresses of the
// region itself, paths, the store and replication are left out.
type RegionConfig struct {
	Region           string             `json:"region"`
	Deployments      []DeploymentConfig `json:"deployments"`
	Keys             []KeyConfig        `json:"keys"`
	AdminAllowRemote bool               `json:"admin_allow_remote"`
	Gateway          GatewayConfig      `json:"gateway"`
}

// DeploymentConfig is a deployment with this region's backends.
type DeploymentConfig struct {
	Name        string            `json:"name"`
	Model       string            `json:"model"`
	Version     string            `json:"version"`
	SKU         string            `json:"sku"`
	Capacity    int               `json:"capacity"`
	Fallbacks   []string          `json:"fallbacks"`
	MaxAttempts int               `json:"max_attempts"`
	Timeouts    map[string]string `json:"timeouts"`
	Backends    []BackendConfig   `json:"backends"`
}

// BackendConfig is a backend without its secret.
type BackendConfig struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	URL        string `json:"url"`
	Priority   int    `json:"priority"`
	Weight     int    `json:"weight"`
	Model      string `json:"model"`
	Auth       string `json:"auth"`
	APIKey     string `json:"api_key"`
	APIVersion string `json:"api_version"`
}

// KeyConfig is a client key's name and limits.
type KeyConfig struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	RPM  int    `json:"rpm"`
	TPM  int    `json:"tpm"`
}

// GatewayConfig is topology gateway with durations as strings.
type GatewayConfig struct {
	MaxBody         int64  `json:"max_body"`
	DrainTimeout    string `json:"drain_timeout"`
	LameDuck        string `json:"lame_duck"`
	AccessLog       bool   `json:"access_log"`
	CooldownDefault string `json:"cooldown_default"`
	CooldownMax     string `json:"cooldown_max"`
	EjectBase       string `json:"eject_base"`
	EjectMax        string `json:"eject_max"`
}

// RenderConfig renders what region's gateway runs of a loaded (defaulted)
// topology. Drift renders the file the same way and compares hashes.
func RenderConfig(t *topology.Topology, region string) RegionConfig {
	c := RegionConfig{Region: region, AdminAllowRemote: t.Admin.AllowRemote,
		Deployments: []DeploymentConfig{}, Keys: []KeyConfig{}}
	r := t.Region(region)
	for _, d := range t.Deployments {
		dc := DeploymentConfig{Name: d.Name, Model: d.Model, Version: d.Version, SKU: d.SKU, Capacity: d.Capacity,
			Fallbacks: d.Fallbacks, MaxAttempts: d.MaxAttempts, Backends: []BackendConfig{},
			Timeouts: map[string]string{"headers": d.Timeouts.Headers.String(), "first_token": d.Timeouts.FirstToken.String(),
				"idle": d.Timeouts.Idle.String(), "total": d.Timeouts.Total.String()}}
		if dc.Fallbacks == nil {
			dc.Fallbacks = []string{}
		}
		if r != nil {
			for _, b := range r.Backends[d.Name] {
				dc.Backends = append(dc.Backends, BackendConfig{Name: b.Name, Kind: b.Kind, URL: b.URL, Priority: b.Priority,
					Weight: b.Weight, Model: b.Model, Auth: b.Auth, APIKey: b.APIKey.String(), APIVersion: b.APIVersion})
			}
		}
		c.Deployments = append(c.Deployments, dc)
	}
	for _, k := range t.Keys {
		c.Keys = append(c.Keys, KeyConfig{Name: k.Name, Key: k.Key.String(), RPM: k.RPM, TPM: k.TPM})
	}
	g := t.Gateway
	c.Gateway = GatewayConfig{MaxBody: g.MaxBody, DrainTimeout: g.DrainTimeout.String(), LameDuck: g.LameDuck.String(),
		AccessLog: g.AccessLog == nil || *g.AccessLog, CooldownDefault: g.CooldownDefault.String(),
		CooldownMax: g.CooldownMax.String(), EjectBase: g.EjectBase.String(), EjectMax: g.EjectMax.String()}
	return c
}

// Hash is "sha256:" and the hex SHA-256 of c's JSON encoding.
func (c RegionConfig) Hash() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings, numbers, slices and maps only
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var (
	datedModel = regexp.MustCompile(`^(.+)-(\d{4}-\d{2}-\d{2})$`) // gpt-4.1-mini-2025-04-14
	shortModel = regexp.MustCompile(`^(.+)-(\d{4})$`)             // gpt-35-turbo-0613
)

// SplitModelVersion splits a model id as OpenAI and Azure OpenAI answers
// name it, "<model>-<version>", where the version is a date (2025-04-14)
// or four digits (0613). An id without such a suffix is returned whole
// with version "".
func SplitModelVersion(id string) (model, version string) {
	if m := datedModel.FindStringSubmatch(id); m != nil {
		return m[1], m[2]
	}
	if m := shortModel.FindStringSubmatch(id); m != nil {
		return m[1], m[2]
	}
	return id, ""
}

// inventory serves GET /admin/inventory for one gateway.
type inventory struct {
	g      *Gateway
	quota  map[*backend]*quotaRec
	models map[*backend]*url.URL // GET {backend}/v1/models; nil for azure-openai
}

// mountInventory registers GET /admin/inventory and puts the quota tap in
// front of the backend transport. New calls it (from routes) after the
// pools exist and before anything is served.
func (g *Gateway) mountInventory() {
	inv := &inventory{g: g, quota: map[*backend]*quotaRec{}, models: map[*backend]*url.URL{}}
	tap := &quotaTap{next: g.rt, now: g.now, byURL: map[*url.URL]*quotaRec{}}
	for _, d := range g.depList {
		for _, b := range d.pool.backends {
			rec := &quotaRec{}
			inv.quota[b] = rec
			for _, u := range b.urls {
				tap.byURL[u] = rec
			}
			if b.rewrite { // sim and openai: base/v1/chat/completions
				u := *b.urls[chatEndpoint]
				u.Path = strings.TrimSuffix(u.Path, "chat/completions") + "models"
				u.RawPath = ""
				inv.models[b] = &u
			}
		}
	}
	g.rt = tap
	g.HandleAdmin("GET /admin/inventory", g.adapt(inv.serve))
}

// quotaTap records the rate-limit headers of every backend answer.
type quotaTap struct {
	next  http.RoundTripper
	now   func() time.Time
	byURL map[*url.URL]*quotaRec // a backend's endpoint URLs (req.URL is one of them)
}

func (q *quotaTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := q.next.RoundTrip(req)
	if err == nil && (resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusTooManyRequests) {
		if rec := q.byURL[req.URL]; rec != nil {
			rec.record(q.now(), resp.StatusCode, resp.Header)
		}
	}
	return resp, err
}

// quotaRec holds a backend's last answer's rate-limit headers as received;
// they are parsed only when the inventory is asked for.
type quotaRec struct {
	mu     sync.Mutex
	at     time.Time
	status int
	// limit, remaining and reset of requests, then of tokens
	h [6]string
}

var quotaHeaders = [6]string{
	"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
	"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens",
}

func (r *quotaRec) record(now time.Time, status int, h http.Header) {
	var v [6]string
	for i, k := range quotaHeaders {
		if vs := h[k]; len(vs) > 0 {
			v[i] = vs[0]
		}
	}
	r.mu.Lock()
	r.at, r.status, r.h = now, status, v
	r.mu.Unlock()
}

func (r *quotaRec) quota() *Quota {
	r.mu.Lock()
	at, status, h := r.at, r.status, r.h
	r.mu.Unlock()
	if at.IsZero() {
		return nil
	}
	return &Quota{At: at.UTC(), Status: status,
		LimitRequests: parseCount(h[0]), RemainingRequests: parseCount(h[1]), ResetRequestsMs: resetMs(h[2]),
		LimitTokens: parseCount(h[3]), RemainingTokens: parseCount(h[4]), ResetTokensMs: resetMs(h[5])}
}

func parseCount(s string) *int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return nil
	}
	return &n
}

// resetMs reads a reset header (see parseReset) in milliseconds.
func resetMs(s string) *int64 {
	d, ok := parseReset(s)
	if !ok {
		return nil
	}
	ms := d.Milliseconds()
	return &ms
}

// modelsProbeTimeout bounds each backend's GET /v1/models.
const modelsProbeTimeout = 3 * time.Second

func (inv *inventory) serve(w http.ResponseWriter, r *http.Request) error {
	g := inv.g
	cfg := RenderConfig(g.topo, g.region)
	out := Inventory{Region: g.region, Draining: g.draining.Load(), ConfigHash: cfg.Hash(), Config: cfg,
		At: g.now().UTC(), Deployments: make([]InventoryDeployment, 0, len(g.depList))}
	var wg sync.WaitGroup
	for _, d := range g.depList {
		status := d.pool.status() // same order as pool.backends
		id := InventoryDeployment{Name: d.name, Model: d.cfg.Model, Version: d.cfg.Version, SKU: d.cfg.SKU,
			Capacity: d.cfg.Capacity, Backends: make([]InventoryBackend, len(status))}
		for i, b := range d.pool.backends {
			st := status[i]
			ib := &id.Backends[i]
			*ib = InventoryBackend{Name: b.name, Kind: b.kind, Model: b.model, State: st.State,
				Serving: st.State == stateHealthy || st.State == stateProbing, Quota: inv.quota[b].quota(),
				Reported: ReportedModel{Source: SourceNone}}
			if u := inv.models[b]; u != nil {
				wg.Go(func() { ib.Reported = inv.probe(r.Context(), b, u) })
			}
		}
		out.Deployments = append(out.Deployments, id)
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// probe asks a backend which models it serves.
func (inv *inventory) probe(ctx context.Context, b *backend, u *url.URL) ReportedModel {
	rep := ReportedModel{Source: SourceModels}
	ctx, cancel := context.WithTimeout(ctx, modelsProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	req.Header["Accept"] = hdrJSON
	req.Header["User-Agent"] = hdrUA
	if b.auth != nil {
		if err := b.auth(ctx, req.Header); err != nil {
			rep.Error = "authorize: " + truncate(err.Error(), 200)
			return rep
		}
	}
	resp, err := inv.g.client.Do(req)
	if err != nil {
		rep.Error = truncate(err.Error(), 200)
		return rep
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		rep.Error = truncate(err.Error(), 200)
		return rep
	}
	if resp.StatusCode != http.StatusOK {
		rep.Error = fmt.Sprintf("GET %s: HTTP %d", u.Path, resp.StatusCode)
		return rep
	}
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		rep.Error = fmt.Sprintf("GET %s: not a model list: %v", u.Path, err)
		return rep
	}
	match := -1
	for i, m := range list.Data {
		if len(rep.Listed) < 20 {
			rep.Listed = append(rep.Listed, m.ID)
		}
		if m.ID == b.model && match < 0 {
			match = i
		}
	}
	if match < 0 && len(list.Data) == 1 {
		match = 0 // a server of one model (vLLM, modelsim) under another name
	}
	if match >= 0 {
		m := list.Data[match]
		rep.Model, rep.Version = m.ID, m.Version
		if rep.Version == "" {
			rep.Model, rep.Version = SplitModelVersion(m.ID)
		}
	}
	return rep
}
