package drift

import (
	"net"
	"net/url"

	"github.com/understudy/understudy/internal/topology"
)

// PortZero lists the addresses of t that a region's gateway or a sim
// backend listens on with port 0 (`understudy up` picks those ports).
func PortZero(t *topology.Topology) []string {
	var out []string
	for _, r := range t.Regions {
		if zeroPort(r.Listen) || zeroURL(r.URL) {
			out = append(out, "regions["+r.Name+"].listen")
		}
		for _, d := range t.Deployments {
			for _, b := range r.Backends[d.Name] {
				if b.Kind == topology.KindSim && zeroURL(b.URL) {
					out = append(out, "regions["+r.Name+"].backends."+d.Name+"["+b.Name+"].url")
				}
			}
		}
	}
	return out
}

// UseAddresses copies into t, for every address with port 0 (regions'
// listen and url, sim backends' url), the address the same region or
// backend has in resolved: the topology `understudy up` wrote with the
// ports it picked. Everything else stays as in t, so edits made to the
// file since `up` started still count as drift. It returns how many
// addresses it filled.
func UseAddresses(t, resolved *topology.Topology) int {
	n := 0
	for i := range t.Regions {
		r := &t.Regions[i]
		rr := resolved.Region(r.Name)
		if rr == nil {
			continue
		}
		if zeroPort(r.Listen) || zeroURL(r.URL) {
			r.Listen, r.URL = rr.Listen, rr.URL
			n++
		}
		for dep, bs := range r.Backends {
			rbs := rr.Backends[dep]
			for j := range bs {
				b := &bs[j]
				if b.Kind != topology.KindSim || !zeroURL(b.URL) {
					continue
				}
				for _, rb := range rbs {
					if rb.Name == b.Name && rb.Kind == b.Kind {
						b.URL = rb.URL
						n++
						break
					}
				}
			}
		}
	}
	return n
}

func zeroPort(hostport string) bool {
	_, port, err := net.SplitHostPort(hostport)
	return err == nil && port == "0"
}

func zeroURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && zeroPort(u.Host)
}
