// Package topology is the single source of truth of an Understudy
// deployment: one YAML file that names the regions, their model deployments
// and backends, client keys, the store and replication, the edge, probes,
// controller and agents directory.
//
// Loading is one strict pipeline with no side effects: Parse decodes and
// rejects unknown keys, ExpandSecrets resolves ${ENV} references in secret
// fields, Default fills every unset field with its documented default, and
// Validate returns every problem at once, each naming the field. Load runs
// all four. Every component reads the same file, so drift is always a
// deviation of the live system from this file, never a difference between
// two hand-kept copies.
package topology
