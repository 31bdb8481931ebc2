// Package controller is the witness and the runbook runner.
//
// It probes every region itself and reads the edge's view; a Detector
// declares a region down with hysteresis (N consecutive failures within T).
// It grants the primary's write lease (package lease). A failover or
// failback is a Run of ordered, idempotent Steps, each with a timeout, each
// transition journaled to disk (one JSON file per run, written atomically
// and fsynced), so a controller killed mid-run resumes at the step that was
// running. The journal record is also the report: step timestamps, RTO,
// RPO, quarantined events and validation results.
package controller
