package topology

import (
	"bytes"
	"text/template"
)

// ExampleOptions fill the example topology written by `understudy init`.
type ExampleOptions struct {
	Key               string // client API key
	AdminToken        string
	ReplicationSecret string
	// Ports are the listen ports of: edge, controller, gateway eastus2,
	// gateway centralus, sim eastus2, sim centralus. Zero lets `up` pick.
	Ports [6]int
}

// DefaultPorts are the ports `understudy init` writes.
var DefaultPorts = [6]int{7080, 7070, 7081, 7082, 7101, 7102}

var exampleTmpl = template.Must(template.New("topology").Parse(`# Understudy topology: the single source of truth for both regions.
# Every key is documented in docs/CONFIG.md; unknown keys are errors.
version: 1
name: demo
pattern: hot-warm            # hot-hot | hot-warm | hot-cold
targets:
  rto: 10s                   # fault to serving again
  rpo: 0s                    # no acknowledged write may be lost (needs sync replication)

keys:                        # client API keys (Bearer or api-key header)
  - name: demo
    key: {{.Key}}            # or ${UNDERSTUDY_KEY} to read it from the environment
    rpm: 6000
    tpm: 2000000

admin:
  token: {{.AdminToken}}

deployments:
  - name: gpt-4.1-mini       # what clients send as "model"
    model: gpt-4.1-mini
    version: "2025-04-14"    # pinned: drift checks compare it across regions
    sku: GlobalStandard
    capacity: 100
    timeouts:
      headers: 30s
      first_token: 20s
      idle: 15s
      total: 120s

regions:
  - name: eastus2            # priority 1: starts as primary
    priority: 1
    listen: 127.0.0.1:{{index .Ports 2}}
    backends:
      gpt-4.1-mini:
        - kind: sim          # a modelsim started by ` + "`understudy up`" + `
          url: http://127.0.0.1:{{index .Ports 4}}
          sim:
            ttft: 20ms
            tokens_per_second: 400
  - name: centralus          # priority 2: warm standby
    priority: 2
    listen: 127.0.0.1:{{index .Ports 3}}
    backends:
      gpt-4.1-mini:
        - kind: sim
          url: http://127.0.0.1:{{index .Ports 5}}
          sim:
            ttft: 20ms
            tokens_per_second: 400

replication:
  mode: sync                 # sync: RPO 0, one cross-region round trip per write
  secret: {{.ReplicationSecret}}

edge:
  listen: 127.0.0.1:{{index .Ports 0}}
  routing: priority

probes:
  path: /readyz
  interval: 1s
  timeout: 500ms
  sample_size: 4
  successful_samples_required: 3

controller:
  listen: 127.0.0.1:{{index .Ports 1}}
  lease_ttl: 3s
  failures: 3
  window: 5s

agents:
  dir: agents
`))

// ExampleYAML returns the two-region example topology `understudy init` writes.
func ExampleYAML(o ExampleOptions) []byte {
	var b bytes.Buffer
	if err := exampleTmpl.Execute(&b, o); err != nil {
		panic(err) // the template is a constant
	}
	return b.Bytes()
}
