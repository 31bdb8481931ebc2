package topology

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pattern is how the regions share work.
type Pattern string

// The patterns.
const (
	HotHot  Pattern = "hot-hot"  // every region serves stateless traffic; state stays primary/standby
	HotWarm Pattern = "hot-warm" // standby provisioned and idle (default)
	HotCold Pattern = "hot-cold" // standby started by the runbook on failover
)

// Topology is the whole file.
type Topology struct {
	// Version of the file format. Default 1; the only version.
	Version int `yaml:"version"`
	// Name of the deployment, used in reports. Default "understudy".
	Name string `yaml:"name"`
	// Pattern is hot-hot, hot-warm or hot-cold. Default hot-warm.
	Pattern Pattern `yaml:"pattern"`
	// DataDir holds every region's local state; relative paths are relative
	// to the topology file. Default "data".
	DataDir string `yaml:"data_dir"`
	// Targets are the recovery objectives drills measure against.
	Targets Targets `yaml:"targets"`
	// Keys are the client API keys the gateways and the edge accept.
	Keys []Key `yaml:"keys"`
	// Admin protects every admin API.
	Admin Admin `yaml:"admin"`
	// Deployments are the models served, identical in every region.
	Deployments []Deployment `yaml:"deployments"`
	// Regions are the failure domains, each with its own gateway and store.
	Regions []Region `yaml:"regions"`
	// Gateway holds settings shared by every regional gateway.
	Gateway Gateway `yaml:"gateway"`
	// Replication says how state moves from the primary to the standbys.
	Replication Replication `yaml:"replication"`
	// Edge is the global router in front of the regional gateways.
	Edge Edge `yaml:"edge"`
	// Probes are the edge's and controller's health probes of the gateways.
	Probes Probes `yaml:"probes"`
	// Controller is the witness that grants leases and runs the runbook.
	Controller Controller `yaml:"controller"`
	// Agents points at the agent definitions kept as code.
	Agents Agents `yaml:"agents"`
	// Links configures the link proxies `up` places between components.
	Links Links `yaml:"links"`

	// Dir is the directory of the file the topology was loaded from; relative
	// paths resolve against it. Not part of the YAML.
	Dir string `yaml:"-"`
}

// Targets are recovery objectives.
type Targets struct {
	// RTO is the longest acceptable time from fault to serving. Default 10s.
	RTO Duration `yaml:"rto"`
	// RPO is the longest acceptable span of lost acknowledged writes.
	// Default 0 (no acknowledged write may be lost; requires sync replication).
	RPO Duration `yaml:"rpo"`
}

// Key is a client API key with its limits.
type Key struct {
	// Name identifies the key in logs and metrics (never the key itself). Required.
	Name string `yaml:"name"`
	// Key is the secret the client sends as a Bearer token or api-key header. Required.
	Key Secret `yaml:"key"`
	// RPM is the requests-per-minute limit. Default 0: unlimited.
	RPM int `yaml:"rpm"`
	// TPM is the tokens-per-minute limit (prompt + completion). Default 0: unlimited.
	TPM int `yaml:"tpm"`
}

// Admin protects admin APIs.
type Admin struct {
	// Token is the bearer token every admin API requires. Required.
	Token Secret `yaml:"token"`
	// AllowRemote lets admin APIs answer peers that are not on loopback.
	// Default false: admin APIs answer loopback peers only.
	AllowRemote bool `yaml:"allow_remote"`
}

// Deployment is a model served under a deployment name in every region.
type Deployment struct {
	// Name is what clients send as "model" or in the Azure path. Required.
	Name string `yaml:"name"`
	// Model is the pinned model name. Default: Name.
	Model string `yaml:"model"`
	// Version is the pinned model version, e.g. "2025-04-14". Required.
	Version string `yaml:"version"`
	// SKU is the deployment type, e.g. GlobalStandard, DataZoneStandard,
	// Standard, ProvisionedManaged. Default "Standard".
	SKU string `yaml:"sku"`
	// Capacity is the deployment's capacity in the SKU's unit (thousands of
	// tokens per minute for Standard SKUs). Default 0: unknown.
	Capacity int `yaml:"capacity"`
	// Fallbacks are deployment names tried, in order, on
	// context_length_exceeded or when this deployment's pool is exhausted.
	// Default none.
	Fallbacks []string `yaml:"fallbacks"`
	// Timeouts bound each attempt and the request.
	Timeouts Timeouts `yaml:"timeouts"`
	// MaxAttempts bounds backend attempts per request (fallbacks included).
	// Default 3.
	MaxAttempts int `yaml:"max_attempts"`
}

// Timeouts bound a request's attempts.
type Timeouts struct {
	// Headers is the longest wait for a backend's response headers. Default 30s.
	Headers Duration `yaml:"headers"`
	// FirstToken is the longest wait for the first streamed chunk after the
	// headers. Default 30s.
	FirstToken Duration `yaml:"first_token"`
	// Idle is the longest gap between streamed chunks. Default 30s.
	Idle Duration `yaml:"idle"`
	// Total bounds the whole request, every attempt included. Default 120s.
	Total Duration `yaml:"total"`
}

// Region is a failure domain.
type Region struct {
	// Name, e.g. eastus2. Required, unique.
	Name string `yaml:"name"`
	// Priority: 1 is best. The region with the best priority starts as primary.
	// Default: its position in the list, 1-based.
	Priority int `yaml:"priority"`
	// Weight among regions of equal priority (weighted and latency routing),
	// 1..1000. Default 100.
	Weight int `yaml:"weight"`
	// Listen is the gateway's listen address, host:port (port 0 lets `up` pick). Required.
	Listen string `yaml:"listen"`
	// URL is how other components reach this region's gateway.
	// Default "http://" + Listen.
	URL string `yaml:"url"`
	// Replicas is the number of gateway processes serving the region, all
	// on the region's one database, behind the region's load balancer at
	// URL. More than 1 needs store.driver postgres (a sqlite file belongs
	// to one process). Default 1.
	Replicas int `yaml:"replicas"`
	// Store is where this region keeps its state.
	Store Store `yaml:"store"`
	// Backends lists, per deployment name, the backends that serve it here.
	// Every deployment needs at least one backend in every region.
	Backends map[string][]Backend `yaml:"backends"`
	// StartCommand starts this region's gateway in hot-cold failover
	// (argv form). Default: `up` starts it with the same binary.
	StartCommand []string `yaml:"start_command"`
}

// Store configures a region's state store.
type Store struct {
	// Driver is sqlite or postgres. Default sqlite.
	Driver string `yaml:"driver"`
	// Path is the sqlite database file. Default <data_dir>/<region>.db.
	Path string `yaml:"path"`
	// DSN is the postgres connection string. Required for postgres.
	DSN Secret `yaml:"dsn"`
	// MaxConns bounds the connection pool (postgres). Default 10.
	MaxConns int `yaml:"max_conns"`
}

// Backend kinds.
const (
	KindSim         = "sim"
	KindOpenAI      = "openai"
	KindAzureOpenAI = "azure-openai"
)

// Backend is one model server behind a deployment in a region.
type Backend struct {
	// Name identifies the backend in logs and metrics. Default
	// "<deployment>-<index>".
	Name string `yaml:"name"`
	// Kind is sim, openai or azure-openai. Required.
	Kind string `yaml:"kind"`
	// URL is the server's base URL: for openai the part before /v1 (e.g.
	// http://vllm:8000), for azure-openai the resource endpoint
	// (https://NAME.openai.azure.com), for sim the address `up` starts
	// modelsim on (http://127.0.0.1:9001; port 0 lets `up` pick). Required.
	URL string `yaml:"url"`
	// Priority: 1 is best; lower-priority backends serve only when better
	// ones are cooling down or ejected. Default 1.
	Priority int `yaml:"priority"`
	// Weight among backends of equal priority, 1..1000. Default 1.
	Weight int `yaml:"weight"`
	// Model is the name this backend serves the deployment under: the
	// "model" field for openai and sim, the deployment name in the path for
	// azure-openai. Default: the deployment's name.
	Model string `yaml:"model"`
	// Auth is none, api-key, bearer or entra. Default: api-key for
	// azure-openai with an APIKey, entra for azure-openai without one,
	// bearer for openai with an APIKey, none otherwise.
	Auth string `yaml:"auth"`
	// APIKey is the backend's key. Default none.
	APIKey Secret `yaml:"api_key"`
	// APIVersion is the azure-openai api-version query. Default "2024-10-21".
	APIVersion string `yaml:"api_version"`
	// Sim tunes the modelsim `up` starts for a sim backend.
	Sim Sim `yaml:"sim"`
}

// Sim tunes a simulated backend.
type Sim struct {
	// TTFT is the time to first token. Default 0.
	TTFT Duration `yaml:"ttft"`
	// TokensPerSecond paces streamed tokens. Default 0: as fast as possible.
	TokensPerSecond float64 `yaml:"tokens_per_second"`
	// RPM and TPM are the simulated quota. Default 0: unlimited.
	RPM int `yaml:"rpm"`
	TPM int `yaml:"tpm"`
}

// Gateway holds settings shared by every regional gateway.
type Gateway struct {
	// MaxBody is the largest request body accepted, in bytes. Default 10 MiB.
	MaxBody int64 `yaml:"max_body"`
	// DrainTimeout bounds the drain after the first shutdown signal. Default 15s.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// LameDuck is how long /readyz fails before draining starts, so routers
	// notice. Default 0 under `up`; set it to a probe window in production.
	LameDuck Duration `yaml:"lame_duck"`
	// AccessLog writes one structured line per request (never keys or
	// bodies). Default true.
	AccessLog *bool `yaml:"access_log"`
	// Cooldown bounds: a 429 without Retry-After cools a backend for
	// CooldownDefault with jitter; no cooldown exceeds CooldownMax.
	// Defaults 10s and 60s.
	CooldownDefault Duration `yaml:"cooldown_default"`
	CooldownMax     Duration `yaml:"cooldown_max"`
	// EjectBase and EjectMax bound the exponential ejection of a backend
	// after 5xx, timeouts or connection errors. Defaults 1s and 30s.
	EjectBase Duration `yaml:"eject_base"`
	EjectMax  Duration `yaml:"eject_max"`
	// Procs caps the OS threads executing Go code at once (GOMAXPROCS) in
	// every gateway process, each replica included. Set, it overrides the
	// GOMAXPROCS environment variable. Default 0: Go's default (the CPUs
	// the process may use, or the GOMAXPROCS environment variable).
	Procs int `yaml:"procs"`
	// CPUs pins every thread of every gateway process to these CPU numbers
	// (Linux), like HAProxy's cpu-map; with Procs unset, GOMAXPROCS becomes
	// the number of CPUs listed. Default none: the kernel places threads.
	CPUs []int `yaml:"cpus"`
}

// Replication says how state moves between regions.
type Replication struct {
	// Mode is sync (a write is acknowledged once the standby applied it) or
	// async (acknowledged locally, lag reported). Default sync.
	Mode string `yaml:"mode"`
	// Transport is journal (Understudy ships its journal between independent
	// stores) or engine (the database replicates by itself; postgres only).
	// Default journal.
	Transport string `yaml:"transport"`
	// Secret authenticates replication traffic between gateways. Required
	// with more than one region.
	Secret Secret `yaml:"secret"`
	// SyncTimeout bounds the wait for the standby in sync mode. Default 2s.
	SyncTimeout Duration `yaml:"sync_timeout"`
	// DegradeToAsync lets a sync primary keep acknowledging writes after
	// SyncTimeout, reporting that it did. Default false: writes fail instead.
	DegradeToAsync bool `yaml:"degrade_to_async"`
	// BatchSize is the most events per shipped batch. Default 500.
	BatchSize int `yaml:"batch_size"`
}

// Routing modes of the edge.
const (
	RoutePriority = "priority"
	RouteWeighted = "weighted"
	RouteLatency  = "latency"
)

// Edge is the global router.
type Edge struct {
	// Listen is the client-facing address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// URL is how clients and drills reach the edge. Default "http://" + Listen.
	URL string `yaml:"url"`
	// Routing is priority, weighted or latency. Default: latency for hot-hot,
	// priority otherwise.
	Routing string `yaml:"routing"`
	// AdditionalLatency is the latency band above the fastest origin within
	// which origins share traffic (latency routing). Default 50ms.
	AdditionalLatency Duration `yaml:"additional_latency"`
	// AttemptTimeout bounds one attempt at one origin until response headers.
	// Default 5s.
	AttemptTimeout Duration `yaml:"attempt_timeout"`
	// RequestTimeout bounds a request across every attempt (until headers).
	// Default 30s.
	RequestTimeout Duration `yaml:"request_timeout"`
	// MaxReplayBody is the largest request body buffered for replay on
	// another origin, in bytes. Default 10 MiB.
	MaxReplayBody int64 `yaml:"max_replay_body"`
	// EjectBase and EjectMax bound passive ejection of an origin after
	// connection errors, timeouts and 5xx. Defaults 1s and 30s.
	EjectBase Duration `yaml:"eject_base"`
	EjectMax  Duration `yaml:"eject_max"`
	// Procs caps the OS threads executing Go code at once (GOMAXPROCS) in
	// the edge process. Set, it overrides the GOMAXPROCS environment
	// variable. Default 0: Go's default (the CPUs the process may use, or
	// the GOMAXPROCS environment variable).
	Procs int `yaml:"procs"`
	// CPUs pins every thread of the edge process to these CPU numbers
	// (Linux); with Procs unset, GOMAXPROCS becomes the number of CPUs
	// listed. Default none: the kernel places threads.
	CPUs []int `yaml:"cpus"`
}

// Probes are health probes with Front Door semantics.
type Probes struct {
	// Path probed on each gateway. Default /readyz.
	Path string `yaml:"path"`
	// Method is GET or HEAD. Default GET (the body carries role and epoch).
	Method string `yaml:"method"`
	// Interval between probes of one origin. Default 1s.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe; must be below Interval. Default 500ms.
	Timeout Duration `yaml:"timeout"`
	// SampleSize is how many recent probes count. Default 4.
	SampleSize int `yaml:"sample_size"`
	// SuccessfulSamplesRequired of the last SampleSize make an origin
	// healthy. Default 3.
	SuccessfulSamplesRequired int `yaml:"successful_samples_required"`
}

// Controller is the witness and runbook runner.
type Controller struct {
	// Listen is the controller's API and dashboard address. Default 127.0.0.1:8070.
	Listen string `yaml:"listen"`
	// URL is how gateways and the CLI reach the controller. Default "http://" + Listen.
	URL string `yaml:"url"`
	// LeaseTTL is the primary's write lease. Default 3s.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Failures consecutive failed probes within Window declare a region
	// down. Defaults 3 and 5s.
	Failures int      `yaml:"failures"`
	Window   Duration `yaml:"window"`
	// ProbeInterval is the controller's own probe interval. Default 500ms.
	ProbeInterval Duration `yaml:"probe_interval"`
	// Approval makes failover wait for `understudy approve`. Default false.
	Approval bool `yaml:"approval"`
	// Cooldown is the least time between two automatic failovers. Default 5m.
	Cooldown Duration `yaml:"cooldown"`
}

// Agents points at agent definitions.
type Agents struct {
	// Dir holds one file per agent (YAML or JSON). Default "agents".
	Dir string `yaml:"dir"`
}

// Links configures the link proxies `up` can place between components.
type Links struct {
	// Enabled places a linkproxy on every link between regions and from the
	// edge and controller to each region. Default false.
	Enabled bool `yaml:"enabled"`
	// Latency is the one-way latency each link proxy adds. Default 0.
	Latency Duration `yaml:"latency"`
	// Isolation is how `up` can cut a region off for the partition drill:
	// "netns" runs each region in its own network namespace joined to the
	// host by a veth pair (root only), "proxy" relies on the link proxies
	// alone, "auto" picks netns when it is available and the topology
	// allows it (see NetnsBlockers), else proxy. Default "auto".
	Isolation string `yaml:"isolation"`
}

// The values of links.isolation.
const (
	IsolationAuto  = "auto"
	IsolationNetns = "netns"
	IsolationProxy = "proxy"
)

// Duration is a time.Duration written as a Go duration string ("1.5s", "5m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a Go duration string, or 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 10s", n.Line)
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (want e.g. 500ms, 10s, 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Secret is a string that may be a ${ENV} reference and is never printed
// back: String and MarshalYAML show the reference or "<redacted>".
type Secret struct {
	ref string // as written in the file
	val string // after expansion
}

// NewSecret returns a literal secret.
func NewSecret(v string) Secret { return Secret{ref: v, val: v} }

// Value returns the secret's value, with ${ENV} references expanded.
func (s Secret) Value() string { return s.val }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.ref == "" }

func (s Secret) String() string {
	if strings.Contains(s.ref, "${") {
		return s.ref
	}
	if s.ref == "" {
		return ""
	}
	return "<redacted>"
}

// UnmarshalYAML keeps the text as written; ExpandSecrets resolves it.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a string", n.Line)
	}
	s.ref, s.val = n.Value, n.Value
	return nil
}

// MarshalYAML never writes a literal secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
