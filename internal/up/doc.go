// Package up runs every component of a topology on this machine, each as
// its own OS process of the same binary, so that drills can kill, freeze
// and cut any of them for real.
//
// Up resolves listen addresses with port 0 to free ports, writes the
// resolved topology (secrets left as written) where the children read it,
// starts modelsims, gateways, the edge and the controller in dependency
// order, and waits for each child's `ready component=…` line before the
// next. A child that fails to start stops the whole run with its error and
// the tail of its log. A child that exits later is reported, never
// restarted silently. On stop, children get SIGTERM, then SIGKILL after a
// grace period. The state file up.json in the data directory lists each
// component's pid, URL and log, for drills and operators.
//
// With links.enabled, link proxies sit on every link between failure
// domains (links.go), and, as root, each region runs in a network
// namespace of its own behind a veth pair (isolate.go), so that the
// control API's partition takes a region's network down for real; without
// root a partition cuts the region's link proxies.
package up
