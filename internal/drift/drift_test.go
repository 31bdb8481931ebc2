package drift

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/gateway"
	"github.com/understudy/understudy/internal/replication"
	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/topology"
)

// TestChecks runs every check against fake gateways that differ from the
// file in one way each, and asserts the verdicts, the exact findings and
// why anything is unknown.
func TestChecks(t *testing.T) {
	fresh := t0.Add(-10 * time.Second) // within the default 1m window
	stale := t0.Add(-2 * time.Minute)
	tests := []struct {
		name string
		// topo changes the file before the fakes are built from it; file
		// changes it after (the regions keep running the old one).
		topo    func(*topology.Topology)
		regions func(w *world)
		file    func(*topology.Topology)
		checks  []string
		east    Verdict
		central Verdict
		// findings, as findingKey lines, in report order.
		findings []string
		// unknown lists substrings of the unknown reasons, per region.
		unknown map[string][]string
	}{
		{
			name: "regions run the file", east: Ready, central: Ready,
		},
		{
			name: "deployment missing from a region",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) { f.inv.Deployments = nil })
			},
			checks: []string{CheckDeployment}, east: Ready, central: NotReady,
			findings: []string{"Added | centralus | deployment | gpt-4.1-mini | deployment | gpt-4.1-mini | absent"},
		},
		{
			name: "deployment the file does not have",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					f.inv.Deployments = append(f.inv.Deployments, gateway.InventoryDeployment{Name: "legacy"})
				})
			},
			checks: []string{CheckDeployment}, east: NotReady, central: Ready,
			findings: []string{"Removed | eastus2 | deployment | legacy | deployment | absent | legacy"},
		},
		{
			name: "backends added to and removed from the file",
			file: func(tp *topology.Topology) {
				tp.Region(central).Backends[dep][0].Name = "centralus-new"
			},
			checks: []string{CheckDeployment}, east: Ready, central: NotReady,
			findings: []string{
				"Added | centralus | deployment | gpt-4.1-mini/centralus-new | backend | centralus-new | absent",
				"Removed | centralus | deployment | gpt-4.1-mini/centralus-b1 | backend | absent | centralus-b1",
			},
		},
		{
			name: "standby backend reports another version",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "2024-01-01" })
			},
			checks: []string{CheckModel}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | model | gpt-4.1-mini/centralus-b1 | version | 2025-04-14 | 2024-01-01"},
		},
		{
			name:   "file pins a new version the regions do not run yet",
			file:   func(tp *topology.Topology) { tp.Deployments[0].Version = "2026-01-01" },
			checks: []string{CheckModel}, east: NotReady, central: NotReady,
			findings: []string{
				"NotEqual | eastus2 | model | gpt-4.1-mini/eastus2-b1 | version | 2026-01-01 | 2025-04-14",
				"NotEqual | centralus | model | gpt-4.1-mini/centralus-b1 | version | 2026-01-01 | 2025-04-14",
			},
		},
		{
			name: "backend serves another model",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Reported.Model = "gpt-4o" })
			},
			checks: []string{CheckModel}, east: NotReady, central: Ready,
			findings: []string{"NotEqual | eastus2 | model | gpt-4.1-mini/eastus2-b1 | model | gpt-4.1-mini | gpt-4o"},
		},
		{
			name: "backend does not list the model",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					f.backend(0).Reported = gateway.ReportedModel{Source: gateway.SourceModels, Listed: []string{"a", "b"}}
				})
			},
			checks: []string{CheckModel}, east: NotReady, central: Ready,
			findings: []string{"NotEqual | eastus2 | model | gpt-4.1-mini/eastus2-b1 | model | gpt-4.1-mini | not served"},
		},
		{
			name: "dated model id counts as the pinned model",
			topo: func(tp *topology.Topology) {
				tp.Regions[0].Backends[dep][0].Model = "gpt-4.1-mini-2025-04-14"
			},
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Reported.Model = "gpt-4.1-mini" })
			},
			checks: []string{CheckModel}, east: Ready, central: Ready,
		},
		{
			name: "backends that do not say their version",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Reported.Version = "" })
				w.fake[central].set(func(f *fakeRegion) {
					f.backend(0).Kind = topology.KindAzureOpenAI
					f.backend(0).Reported = gateway.ReportedModel{Source: gateway.SourceNone}
				})
			},
			checks: []string{CheckModel}, east: Unknown, central: Unknown,
			unknown: map[string][]string{
				east:    {"gpt-4.1-mini/eastus2-b1: the backend reports model gpt-4.1-mini without a version"},
				central: {"a azure-openai backend does not report its model version"},
			},
		},
		{
			name: "backend that cannot be asked",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					f.backend(0).Reported = gateway.ReportedModel{Source: gateway.SourceModels, Error: "connect: connection refused"}
				})
			},
			checks: []string{CheckModel}, east: Unknown, central: Ready,
			unknown: map[string][]string{east: {"cannot ask the backend for its models: connect: connection refused"}},
		},
		{
			name: "sku and capacity changed in the file",
			file: func(tp *topology.Topology) {
				tp.Deployments[0].SKU, tp.Deployments[0].Capacity = "DataZoneStandard", 200
			},
			checks: []string{CheckCapacity}, east: NotReady, central: NotReady,
			findings: []string{
				"NotEqual | eastus2 | sku_capacity | gpt-4.1-mini | sku | DataZoneStandard | GlobalStandard",
				"NotEqual | eastus2 | sku_capacity | gpt-4.1-mini | capacity | 200 | 100",
				"NotEqual | centralus | sku_capacity | gpt-4.1-mini | sku | DataZoneStandard | GlobalStandard",
				"NotEqual | centralus | sku_capacity | gpt-4.1-mini | capacity | 200 | 100",
			},
		},
		{
			name: "backend's token limit is not the capacity",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, -1, 0, 100000, 100000) })
				w.fake[central].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, -1, 0, 50000, 50000) })
			},
			checks: []string{CheckCapacity}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | sku_capacity | gpt-4.1-mini/centralus-b1 | capacity | 100 (100000 tokens/min) | 50 (x-ratelimit-limit-tokens 50000)"},
		},
		{
			name: "no serving backend, and a draining gateway",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) {
					f.backend(0).State, f.backend(0).Serving = "ejected", false
				})
				w.fake[east].set(func(f *fakeRegion) { f.inv.Draining = true })
			},
			checks: []string{CheckServing}, east: NotReady, central: NotReady,
			findings: []string{
				"NotEqual | eastus2 | serving | - | draining | false | true",
				"NotEqual | centralus | serving | gpt-4.1-mini | serving_backends | >= 1 | 0 of 1",
			},
		},
		{
			name: "standby quota does not cover the primary's load",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 600, 100, 100000, 90000) })     // used 500 req, 10000 tok
				w.fake[central].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 400, 400, 100000, 100000) }) // idle
			},
			checks: []string{CheckQuota}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | quota | gpt-4.1-mini | quota.requests | >= 500 per minute (load of eastus2) | 400 per minute left"},
		},
		{
			name: "a reset window gives the whole limit back and takes the load away",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(stale, 600, 100, -1, 0) })
				w.fake[central].set(func(f *fakeRegion) {
					q := quota(t0.Add(-1500*time.Millisecond), 600, 0, -1, 0)
					q.ResetRequestsMs = i64(1000) // reset half a second before the inventory
					f.backend(0).Quota = q
				})
			},
			checks: []string{CheckQuota}, east: Ready, central: Ready,
		},
		{
			name: "unlimited standby covers any load",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 600, 1, 100000, 1) })
				w.fake[central].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, -1, 0, -1, 0) })
			},
			checks: []string{CheckQuota}, east: Unknown, central: Ready,
			unknown: map[string][]string{east: {
				"requests: centralus backend centralus-b1 advertises no requests limit, so its load is not known",
				"tokens: centralus backend centralus-b1 advertises no tokens limit, so its load is not known",
			}},
		},
		{
			name: "standby that never answered has unknown quota",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 600, 500, -1, 0) })
			},
			checks: []string{CheckQuota}, east: Ready, central: Unknown,
			unknown: map[string][]string{central: {"requests: backend centralus-b1 has not answered since its gateway started"}},
		},
		{
			name: "ejected backends give no headroom",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 600, 590, -1, 0) })
				w.fake[central].set(func(f *fakeRegion) {
					f.backend(0).Quota = quota(fresh, 600, 600, -1, 0)
					f.backend(0).State, f.backend(0).Serving = "ejected", false
				})
			},
			checks: []string{CheckQuota}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | quota | gpt-4.1-mini | quota.requests | >= 10 per minute (load of eastus2) | 0 per minute left"},
			unknown:  map[string][]string{central: {"tokens: eastus2 backend eastus2-b1 advertises no tokens limit, so its load is not known"}},
		},
		{
			name: "agents added, removed and changed",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) {
					f.agents = []agents.AppliedAgent{
						{Name: "support", Version: "0", Hash: "0123456789abcdef0123"},
						{Name: "zombie", Version: "9", Hash: "fedcba9876543210fedc"},
					}
				})
			},
			checks: []string{CheckAgents}, east: Ready, central: NotReady,
			findings: []string{
				"NotEqual | centralus | agents | agent support | hash | version 1 hash " + (&agents.Definition{Name: "support", Model: dep, Instructions: "Help.", Metadata: map[string]string{"version": "1"}}).Hash()[:12] + " | version 0 hash 0123456789ab",
				"Added | centralus | agents | agent triage | hash | version 2 hash " + (&agents.Definition{Name: "triage", Model: dep, Instructions: "Sort.", Metadata: map[string]string{"version": "2"}}).Hash()[:12] + " | absent",
				"Removed | centralus | agents | agent zombie | hash | absent | version 9 hash fedcba987654",
			},
		},
		{
			name: "gateway runs an older file",
			file: func(tp *topology.Topology) {
				tp.Deployments[0].Timeouts.Total = topology.Duration(time.Minute)
			},
			checks: []string{CheckConfig}, east: NotReady, central: NotReady,
			findings: []string{
				"NotEqual | eastus2 | config | - | config_hash | " + hashAfter(func(tp *topology.Topology) { tp.Deployments[0].Timeouts.Total = topology.Duration(time.Minute) }, east) + " | " + hashAfter(nil, east),
				"NotEqual | centralus | config | - | config_hash | " + hashAfter(func(tp *topology.Topology) { tp.Deployments[0].Timeouts.Total = topology.Duration(time.Minute) }, central) + " | " + hashAfter(nil, central),
			},
		},
		{
			name: "replication disconnected",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					st := f.state.Replication[central]
					st.Connected, st.LastError = false, "dial tcp: connection refused"
					f.state.Replication[central] = st
				})
			},
			checks: []string{CheckReplication}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | replication | - | replication.connected | true | false"},
		},
		{
			name: "rpo 0 needs the standby in the sync set, not degraded",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					st := f.state.Replication[central]
					st.LagEvents, st.LagSeconds, st.Degraded, st.DegradedAcks = 3, 1.5, true, 3
					f.state.Replication[central] = st
					f.state.SyncPeers = nil
				})
			},
			checks: []string{CheckReplication}, east: Ready, central: NotReady,
			findings: []string{
				"NotEqual | centralus | replication | - | replication.sync | in the primary's sync set (targets.rpo 0) | catching up, lag 1.5s (3 events)",
				"NotEqual | centralus | replication | - | replication.degraded | false (targets.rpo 0) | true (3 writes acknowledged unreplicated)",
			},
		},
		{
			name: "async lag beyond the rpo, in the wrong mode",
			topo: func(tp *topology.Topology) {
				tp.Replication.Mode, tp.Targets.RPO = "async", topology.Duration(5*time.Second)
			},
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					st := f.state.Replication[central]
					st.Mode, st.LagEvents, st.LagSeconds = replication.Mode("sync"), 40, 12.25
					f.state.Replication[central] = st
				})
			},
			checks: []string{CheckReplication}, east: Ready, central: NotReady,
			findings: []string{
				"NotEqual | centralus | replication | - | replication.mode | async | sync",
				"NotEqual | centralus | replication | - | replication.lag_seconds | <= 5s (targets.rpo) | 12.25s (40 events)",
			},
		},
		{
			name: "async lag within the rpo",
			topo: func(tp *topology.Topology) {
				tp.Replication.Mode, tp.Targets.RPO = "async", topology.Duration(5*time.Second)
			},
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					st := f.state.Replication[central]
					st.Mode, st.LagEvents, st.LagSeconds = replication.Mode("async"), 4, 4.9
					f.state.Replication[central] = st
					f.state.SyncPeers = nil
				})
			},
			checks: []string{CheckReplication}, east: Ready, central: Ready,
		},
		{
			name: "engine replication: standby streaming, primary synchronous",
			topo: engineTopology,
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					f.state.Replication, f.state.SyncPeers = nil, nil
					f.state.Engine = &postgres.Streaming{Synchronous: true, Standbys: []postgres.StandbyStatus{{Name: "walreceiver", State: "streaming", SyncState: "sync"}}}
				})
				w.fake[central].set(func(f *fakeRegion) { f.state.Engine = &postgres.Streaming{InRecovery: true, Receiving: true} })
			},
			checks: []string{CheckReplication}, east: Ready, central: Ready,
		},
		{
			name: "engine replication: standby not receiving, primary not waiting for it",
			topo: engineTopology,
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) {
					f.state.Replication, f.state.SyncPeers = nil, nil
					f.state.Engine = &postgres.Streaming{}
				})
				w.fake[central].set(func(f *fakeRegion) { f.state.Engine = &postgres.Streaming{InRecovery: true} })
			},
			checks: []string{CheckReplication}, east: Ready, central: NotReady,
			findings: []string{
				"NotEqual | centralus | replication | - | engine.receiving | true | false",
				"NotEqual | centralus | replication | - | engine.synchronous | true (targets.rpo 0) | false",
			},
		},
		{
			name: "primary ships nothing to the standby",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.state.Replication = nil })
			},
			checks: []string{CheckReplication}, east: Ready, central: NotReady,
			findings: []string{"NotEqual | centralus | replication | - | replication.connected | true | not shipping"},
		},
		{
			name: "two primaries: the older epoch is not a standby",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) { f.state.Role, f.state.Epoch = "primary", 2 })
			},
			checks: []string{CheckReplication}, east: NotReady, central: Ready,
			findings: []string{"NotEqual | eastus2 | replication | - | role | standby | primary at epoch 1"},
		},
		{
			name: "no primary anywhere",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.state.Role = "fenced" })
			},
			checks: []string{CheckReplication}, east: Unknown, central: Unknown,
			unknown: map[string][]string{east: {"no reachable region reports the primary role"}, central: {"no reachable region reports the primary role"}},
		},
		{
			name: "standby unreachable",
			regions: func(w *world) {
				w.fake[central].srv.Close()
			},
			east: Unknown, central: Unknown,
			unknown: map[string][]string{
				// its load, in a failback, is not known
				east:    {"requests: centralus did not report its inventory"},
				central: {"region unreachable", "connection refused"},
			},
		},
		{
			name: "plain gateway without agents and state",
			regions: func(w *world) {
				w.fake[central].set(func(f *fakeRegion) {
					f.status["/admin/agents"], f.status["/admin/state"] = http.StatusNotFound, http.StatusNotFound
				})
			},
			checks: []string{CheckAgents, CheckReplication}, east: Ready, central: Unknown,
			unknown: map[string][]string{central: {"GET /admin/agents: not served by this region (404)"}},
		},
		{
			name: "inventory failing",
			regions: func(w *world) {
				w.fake[east].set(func(f *fakeRegion) { f.status["/admin/inventory"] = http.StatusInternalServerError })
			},
			checks: []string{CheckDeployment, CheckQuota, CheckAgents}, east: Unknown, central: Unknown,
			unknown: map[string][]string{
				east:    {"GET /admin/inventory: HTTP 500: injected by the test"},
				central: {"eastus2 did not report its inventory"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.topo)
			if tt.regions != nil {
				tt.regions(w)
			}
			if tt.file != nil {
				tt.file(w.topo)
			}
			if tt.name == "inventory failing" {
				// centralus must have load for eastus2's inventory to matter.
				w.fake[central].set(func(f *fakeRegion) { f.backend(0).Quota = quota(fresh, 600, 500, -1, 0) })
			}
			r := w.check(t, Options{Checks: tt.checks})
			if got := []Verdict{r.Verdict(east), r.Verdict(central)}; got[0] != tt.east || got[1] != tt.central {
				t.Errorf("verdicts east, central = %v, want %v, %v\nreasons: %q / %q", got, tt.east, tt.central,
					r.Region(east).Reasons, r.Region(central).Reasons)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, findingKey(f))
			}
			if !slices.Equal(got, tt.findings) {
				t.Errorf("findings:\n  got  %q\n  want %q", got, tt.findings)
			}
			for _, region := range []string{east, central} {
				var unknown []string
				for _, c := range r.Region(region).Checks {
					unknown = append(unknown, c.Unknown...)
				}
				all := strings.Join(unknown, "\n")
				for _, want := range tt.unknown[region] {
					if !strings.Contains(all, want) {
						t.Errorf("%s: unknown reasons %q lack %q", region, unknown, want)
					}
				}
				if len(tt.unknown[region]) == 0 && len(unknown) > 0 {
					t.Errorf("%s: unexpected unknown reasons %q", region, unknown)
				}
			}
		})
	}
}

// hashAfter is the config hash of the test topology's region after mutate.
func hashAfter(mutate func(*topology.Topology), region string) string {
	tp := &topology.Topology{
		Keys:        []topology.Key{{Name: "k", Key: topology.NewSecret("sk-drift-test-0123456789")}},
		Admin:       topology.Admin{Token: topology.NewSecret(adminToken)},
		Deployments: []topology.Deployment{{Name: dep, Version: "2025-04-14", SKU: "GlobalStandard", Capacity: 100}},
	}
	for _, name := range []string{east, central} {
		tp.Regions = append(tp.Regions, topology.Region{Name: name,
			Backends: map[string][]topology.Backend{dep: {{Name: name + "-b1", Kind: topology.KindOpenAI, URL: "http://127.0.0.1:9"}}}})
	}
	tp.Default()
	if mutate != nil {
		mutate(tp)
	}
	return gateway.RenderConfig(tp, region).Hash()
}

// engineTopology puts both regions on PostgreSQL streaming replication.
func engineTopology(tp *topology.Topology) {
	tp.Replication.Transport = "engine"
	for i := range tp.Regions {
		tp.Regions[i].Store = topology.Store{Driver: "postgres", DSN: topology.NewSecret("postgres://127.0.0.1:1/" + tp.Regions[i].Name)}
	}
}
