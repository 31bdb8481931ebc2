// Package netns builds Linux network namespaces and veth pairs with the
// iproute2 `ip` command, for partitions that cut real network links: `up`
// runs each region in its own namespace (links.isolation), and the
// end-to-end tests build their own labs with the same calls.
//
// It shells out to `ip` rather than speaking netlink: every step is a
// command an operator can read in an error message and repeat by hand, and
// it needs no dependency. Every namespace a process creates is named
// PREFIX<pid>-…, so Sweep can delete what a killed process left behind
// without touching a namespace whose owner still runs. Nothing here
// routes anywhere but between the namespaces and the host: a namespace
// gets no default route, so its processes reach only the addresses of its
// own links.
package netns
