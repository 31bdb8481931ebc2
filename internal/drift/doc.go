// Package drift checks that every region is ready to take traffic before
// it is needed: it compares the live regions with the topology file, and
// so with each other, and gives each region a verdict READY, NOT_READY or
// UNKNOWN.
//
// Check reads three admin endpoints of every region's gateway in parallel
// (GET /admin/inventory, /admin/agents and /admin/state), then runs small
// check functions over what it read: the deployment and its backends
// exist, backends report the pinned model and version, SKU and capacity
// match, a backend serves, quota headroom covers the other regions' load,
// agent definitions match the files by hash, the gateway configuration
// matches the file by hash, and replication is connected within the RPO
// target. A difference is a Finding (Added, Removed or NotEqual, with the
// expected and actual values) and fails its check; a check that lacks the
// data to decide (a region unreachable, a backend that does not report a
// version, no quota headers yet) is unknown, never passed. A region with a
// failed check is NOT_READY, else one with an unknown check is UNKNOWN,
// else READY.
//
// Added and Removed read like a plan of applying the file to the region
// (as in `understudy agents diff`): Added is in the file and missing from
// the region, Removed is in the region and not in the file.
//
// Check is run-once; Checker repeats it on an interval for the controller
// and exports the last report as Prometheus metrics. See docs/DRIFT.md.
package drift
