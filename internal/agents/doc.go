// Package agents keeps agents as code and runs their turns.
//
// A Definition is one file under the topology's agents directory (YAML or
// JSON): name, model deployment, instructions, function tools and
// metadata.version. Definitions are validated (errors name the file and
// field) and content-hashed over their canonical JSON, so the same agent
// written in YAML or JSON, in any key order, has one hash, and drift checks
// compare regions by hash. Clients refer to agents by name, so recreating an
// agent in another region changes nothing a client holds.
package agents
