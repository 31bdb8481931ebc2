package drift

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/topology"
)

// invDeployment returns the region's inventory of deployment name, or nil.
func invDeployment(inv *gateway.Inventory, name string) *gateway.InventoryDeployment {
	for i := range inv.Deployments {
		if inv.Deployments[i].Name == name {
			return &inv.Deployments[i]
		}
	}
	return nil
}

// checkDeployment: every deployment of the file exists in the region with
// the region's backends of the file, and nothing else.
func checkDeployment(e *eval, o *observation) (out outcome) {
	region := e.t.Region(o.region)
	for _, d := range e.t.Deployments {
		id := invDeployment(o.inv, d.Name)
		if id == nil {
			out.add(Finding{Kind: Added, Deployment: d.Name, Field: "deployment", Expected: d.Name, Actual: "absent"})
			continue
		}
		var want []string
		for _, b := range region.Backends[d.Name] {
			want = append(want, b.Name)
		}
		var have []string
		for _, b := range id.Backends {
			have = append(have, b.Name)
		}
		for _, b := range want {
			if !slices.Contains(have, b) {
				out.add(Finding{Kind: Added, Deployment: d.Name, Backend: b, Field: "backend", Expected: b, Actual: "absent"})
			}
		}
		for _, b := range have {
			if !slices.Contains(want, b) {
				out.add(Finding{Kind: Removed, Deployment: d.Name, Backend: b, Field: "backend", Expected: "absent", Actual: b})
			}
		}
	}
	for _, id := range o.inv.Deployments {
		if e.t.Deployment(id.Name) == nil {
			out.add(Finding{Kind: Removed, Deployment: id.Name, Field: "deployment", Expected: "absent", Actual: id.Name})
		}
	}
	return out
}

// modelMatches reports whether a backend's reported model is the
// deployment's pinned model, or the name the backend serves it under
// (with or without its version suffix).
func modelMatches(reported string, d *topology.Deployment, served string) bool {
	base, _ := gateway.SplitModelVersion(served)
	return reported == d.Model || reported == served || reported == base
}

// checkModel: every backend reports the pinned model and version.
func checkModel(e *eval, o *observation) (out outcome) {
	for _, d := range e.t.Deployments {
		id := invDeployment(o.inv, d.Name)
		if id == nil {
			continue // the deployment check reports it
		}
		for _, b := range id.Backends {
			rep := b.Reported
			f := Finding{Kind: NotEqual, Deployment: d.Name, Backend: b.Name}
			switch {
			case rep.Source == gateway.SourceNone:
				out.unknownf("%s/%s: a %s backend does not report its model version on the data plane", d.Name, b.Name, b.Kind)
				continue
			case rep.Error != "":
				out.unknownf("%s/%s: cannot ask the backend for its models: %s", d.Name, b.Name, rep.Error)
				continue
			case rep.Model == "":
				f.Field, f.Expected, f.Actual = "model", d.Model, "not served"
				if len(rep.Listed) > 0 {
					f.Detail = "the backend lists " + strings.Join(rep.Listed, ", ")
				}
				out.add(f)
				continue
			case !modelMatches(rep.Model, &d, b.Model):
				f.Field, f.Expected, f.Actual = "model", d.Model, rep.Model
				out.add(f)
				continue
			case rep.Version == "":
				out.unknownf("%s/%s: the backend reports model %s without a version", d.Name, b.Name, rep.Model)
			case rep.Version != d.Version:
				f.Field, f.Expected, f.Actual = "version", d.Version, rep.Version
				out.add(f)
			}
		}
	}
	return out
}

// tpmSKU reports whether a SKU's capacity is in thousands of tokens per
// minute (the Standard family), so x-ratelimit-limit-tokens can be
// compared with it.
func tpmSKU(sku string) bool {
	switch strings.ToLower(sku) {
	case "standard", "globalstandard", "datazonestandard":
		return true
	}
	return false
}

// checkCapacity: the region runs the file's SKU and capacity, and for
// Standard-family SKUs every backend that advertised a token limit
// advertises capacity × 1000 tokens per minute.
func checkCapacity(e *eval, o *observation) (out outcome) {
	for _, d := range e.t.Deployments {
		id := invDeployment(o.inv, d.Name)
		if id == nil {
			continue
		}
		if id.SKU != d.SKU {
			out.add(Finding{Kind: NotEqual, Deployment: d.Name, Field: "sku", Expected: d.SKU, Actual: id.SKU})
		}
		if id.Capacity != d.Capacity {
			out.add(Finding{Kind: NotEqual, Deployment: d.Name, Field: "capacity", Expected: strconv.Itoa(d.Capacity), Actual: strconv.Itoa(id.Capacity)})
		}
		if d.Capacity <= 0 || !tpmSKU(d.SKU) {
			continue
		}
		want := int64(d.Capacity) * 1000
		for _, b := range id.Backends {
			if b.Quota == nil || b.Quota.LimitTokens == nil || *b.Quota.LimitTokens == want {
				continue
			}
			got := *b.Quota.LimitTokens
			out.add(Finding{Kind: NotEqual, Deployment: d.Name, Backend: b.Name, Field: "capacity",
				Expected: fmt.Sprintf("%d (%d tokens/min)", d.Capacity, want),
				Actual:   fmt.Sprintf("%g (x-ratelimit-limit-tokens %d)", float64(got)/1000, got)})
		}
	}
	return out
}

// checkServing: the gateway is not draining and every deployment has a
// backend that is neither cooling down nor ejected.
func checkServing(e *eval, o *observation) (out outcome) {
	if o.inv.Draining {
		out.add(Finding{Kind: NotEqual, Field: "draining", Expected: "false", Actual: "true",
			Detail: "/readyz fails while the gateway drains"})
	}
	for _, d := range e.t.Deployments {
		id := invDeployment(o.inv, d.Name)
		if id == nil {
			continue
		}
		var states []string
		serving := 0
		for _, b := range id.Backends {
			if b.Serving {
				serving++
			}
			states = append(states, b.Name+" "+b.State)
		}
		if serving == 0 {
			out.add(Finding{Kind: NotEqual, Deployment: d.Name, Field: "serving_backends", Expected: ">= 1",
				Actual: fmt.Sprintf("0 of %d", len(id.Backends)), Detail: strings.Join(states, ", ")})
		}
	}
	return out
}

// checkAgents: the agents applied in the region are the definitions in the
// files, by name and content hash.
func checkAgents(e *eval, o *observation) (out outcome) {
	if e.defsErr != nil {
		out.unknownf("agent definitions: %v", e.defsErr)
		return out
	}
	desc := func(version, hash string) string {
		s := "hash " + hash[:min(12, len(hash))]
		if version != "" {
			s = "version " + version + " " + s
		}
		return s
	}
	for _, c := range agents.Diff(e.defs, o.agents) {
		f := Finding{Kind: Kind(c.Kind), Agent: c.Name, Field: "hash", Expected: "absent", Actual: "absent"}
		if c.File != nil {
			f.Expected = desc(c.File.Version(), c.File.Hash())
		}
		if c.Region != nil {
			f.Actual = desc(c.Region.Version, c.Region.Hash)
		}
		out.add(f)
	}
	if len(e.defs) == 0 && len(o.agents) == 0 {
		out.note("no agent definitions and none applied")
	}
	return out
}

// checkConfig: the gateway runs the configuration the file renders for
// its region (gateway.RenderConfig), by hash; the finding names the paths
// that differ.
func checkConfig(e *eval, o *observation) (out outcome) {
	want := gateway.RenderConfig(e.t, o.region)
	if h := want.Hash(); h != o.inv.ConfigHash {
		out.add(Finding{Kind: NotEqual, Field: "config_hash", Expected: h, Actual: o.inv.ConfigHash,
			Detail: configDiff(want, o.inv.Config)})
	}
	return out
}

// configDiff lists the first paths where two rendered configs differ.
func configDiff(want, got gateway.RegionConfig) string {
	w, g := flatten(want), flatten(got)
	var paths []string
	for p, v := range w {
		if gv, ok := g[p]; !ok || gv != v {
			paths = append(paths, p)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	const show = 5
	var parts []string
	for i, p := range paths {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(paths)-show))
			break
		}
		wv, ok := w[p]
		if !ok {
			wv = "absent"
		}
		gv, ok := g[p]
		if !ok {
			gv = "absent"
		}
		parts = append(parts, fmt.Sprintf("%s: file %s, region %s", p, wv, gv))
	}
	if len(parts) == 0 {
		return "the region's config renders differently (another version of understudy?)"
	}
	return strings.Join(parts, "; ")
}

// flatten turns a JSON-encodable value into path → scalar; list elements
// that have a "name" are keyed by it, so a removed backend is one path.
func flatten(v any) map[string]string {
	b, _ := json.Marshal(v)
	var x any
	json.Unmarshal(b, &x)
	out := map[string]string{}
	var walk func(p string, x any)
	walk = func(p string, x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, v := range t {
				walk(join(p, k), v)
			}
		case []any:
			if len(t) == 0 {
				out[p] = "[]"
			}
			for i, v := range t {
				key := "[" + strconv.Itoa(i) + "]"
				if m, ok := v.(map[string]any); ok {
					if n, ok := m["name"].(string); ok {
						key = "[" + n + "]"
					}
				}
				walk(p+key, v)
			}
		default:
			s, _ := json.Marshal(t)
			out[p] = string(s)
		}
	}
	walk("", x)
	return out
}

func join(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

// checkReplication: the primary ships to this region, connected, in the
// configured mode, within the RPO target: with targets.rpo 0 the region
// must be in the primary's sync set and not degraded; otherwise its lag
// must be at most the RPO.
func checkReplication(e *eval, o *observation) (out outcome) {
	if len(e.t.Regions) < 2 {
		out.note("single region: nothing to replicate to")
		return out
	}
	if e.primary == "" {
		out.unknownf("no reachable region reports the primary role")
		return out
	}
	p := e.obs[e.primary].state
	if o.region == e.primary {
		out.note("primary at epoch " + strconv.FormatInt(p.Epoch, 10))
		return out
	}
	if o.state != nil && o.state.Role == "primary" {
		out.add(Finding{Kind: NotEqual, Field: "role", Expected: "standby",
			Actual: fmt.Sprintf("primary at epoch %d", o.state.Epoch),
			Detail: fmt.Sprintf("%s is primary at epoch %d", e.primary, p.Epoch)})
		return out
	}
	if e.t.Replication.Transport == "engine" {
		return checkEngineReplication(e, o, p)
	}
	st, ok := p.Replication[o.region]
	if !ok {
		out.add(Finding{Kind: NotEqual, Field: "replication.connected", Expected: "true",
			Actual: "not shipping", Detail: "the primary " + e.primary + " has no shipper to this region"})
		return out
	}
	if !st.Connected {
		out.add(Finding{Kind: NotEqual, Field: "replication.connected", Expected: "true", Actual: "false", Detail: st.LastError})
	}
	if string(st.Mode) != e.t.Replication.Mode {
		out.add(Finding{Kind: NotEqual, Field: "replication.mode", Expected: e.t.Replication.Mode, Actual: string(st.Mode)})
	}
	lag := fmt.Sprintf("%s (%d events)", seconds(st.LagSeconds), st.LagEvents)
	rpo := e.t.Targets.RPO.D()
	if rpo == 0 {
		if !slices.Contains(p.SyncPeers, o.region) {
			out.add(Finding{Kind: NotEqual, Field: "replication.sync", Expected: "in the primary's sync set (targets.rpo 0)",
				Actual: "catching up, lag " + lag})
		}
		if st.Degraded {
			out.add(Finding{Kind: NotEqual, Field: "replication.degraded", Expected: "false (targets.rpo 0)",
				Actual: fmt.Sprintf("true (%d writes acknowledged unreplicated)", st.DegradedAcks)})
		}
	} else if time.Duration(st.LagSeconds*float64(time.Second)) > rpo {
		out.add(Finding{Kind: NotEqual, Field: "replication.lag_seconds", Expected: "<= " + rpo.String() + " (targets.rpo)", Actual: lag})
	}
	return out
}

// checkEngineReplication: with PostgreSQL streaming replication the
// standby's server receives WAL, and with targets.rpo 0 the primary's
// commits wait for a standby (synchronous); otherwise the standby's
// replay is within the RPO of the primary's last transaction.
func checkEngineReplication(e *eval, o *observation, p *regionState) (out outcome) {
	if o.state == nil || o.state.Engine == nil || p.Engine == nil {
		out.unknownf("no engine replication state")
		return out
	}
	se := o.state.Engine
	if !se.InRecovery {
		out.add(Finding{Kind: NotEqual, Field: "engine.in_recovery", Expected: "true (a standby of " + e.primary + ")", Actual: "false"})
		return out
	}
	if !se.Receiving {
		out.add(Finding{Kind: NotEqual, Field: "engine.receiving", Expected: "true", Actual: "false",
			Detail: "the standby's WAL receiver is not streaming from the primary"})
	}
	if rpo := e.t.Targets.RPO.D(); rpo == 0 {
		if !p.Engine.Synchronous {
			out.add(Finding{Kind: NotEqual, Field: "engine.synchronous", Expected: "true (targets.rpo 0)", Actual: "false",
				Detail: "the primary's commits do not wait for a standby"})
		}
	} else if time.Duration(se.LastReplayAgeS*float64(time.Second)) > rpo && se.ReplayLagBytes > 0 {
		out.add(Finding{Kind: NotEqual, Field: "engine.last_replay_age_s", Expected: "<= " + rpo.String() + " (targets.rpo)",
			Actual: seconds(se.LastReplayAgeS)})
	}
	return out
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
