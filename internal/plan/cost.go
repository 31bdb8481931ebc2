package plan

import (
	"fmt"
	"math"

	"github.com/understudy/understudy/internal/topology"
)

// Cost is the steady-state cost of a design relative to running the same
// workload in one region (1.00), with the parts it adds up from and the
// assumptions behind them.
type Cost struct {
	Multiplier  float64
	Lines       []CostLine
	Assumptions []string
}

// CostLine is one part of a cost.
type CostLine struct {
	Part  string
	Value float64 // in units of one region's cost
	Why   string
}

// replicationShare is the cross-region traffic of the journal, in units of
// one region's cost: conversation items and responses are text, small next
// to the inference that produced them.
const replicationShare = 0.02

// costOf prices pattern p. One region's cost is split into model capacity
// (modelShare) and infrastructure (the rest: gateway, store, network,
// observability). The standby's infrastructure runs in full (hot-hot), at
// minimum scale (hot-warm, half) or not at all (hot-cold: a tenth for
// backups and geo-redundant storage). Pay-per-token model capacity costs
// nothing while idle, because tokens are paid where they are served;
// provisioned capacity is reserved for the full load in every region that
// must take it over (hot-hot, hot-warm) and bought on failover in hot-cold.
func costOf(p topology.Pattern, provisioned bool, modelShare float64) Cost {
	infra := 1 - modelShare
	c := Cost{Lines: []CostLine{{
		Part:  "primary region",
		Value: 1,
		Why:   fmt.Sprintf("infrastructure %.0f%% + model capacity %.0f%%", infra*100, modelShare*100),
	}}}
	add := func(part string, v float64, why string) {
		c.Lines = append(c.Lines, CostLine{Part: part, Value: v, Why: why})
	}
	switch p {
	case topology.HotHot:
		add("standby infrastructure", infra, "serves live traffic, scaled to take the full load")
	case topology.HotWarm:
		add("standby infrastructure", infra/2, "running and idle at minimum scale (half)")
	default:
		add("standby infrastructure", infra/10, "nothing running: backups, geo-redundant storage, the IaC to deploy it (a tenth)")
	}
	switch {
	case !provisioned:
		add("standby model capacity", 0, "pay-per-token: tokens are paid where they are served; an idle deployment costs nothing")
	case p == topology.HotCold:
		add("standby model capacity", 0, "provisioned throughput bought on failover (until then nothing)")
	default:
		add("standby model capacity", modelShare, "provisioned throughput reserved for 100% of peak, so the standby can take the full load")
	}
	if p != topology.HotCold {
		add("cross-region replication", replicationShare, "journal traffic between the regions (text; small next to inference)")
	}
	var sum float64
	for _, l := range c.Lines {
		sum += l.Value
	}
	c.Multiplier = math.Round(sum*100) / 100
	c.Assumptions = []string{
		fmt.Sprintf("One region's steady-state cost is %.0f%% model capacity and %.0f%% infrastructure (gateway, store, network, observability); change it with --model-share.", modelShare*100, infra*100),
		"A hot-warm standby runs its infrastructure at half scale; a hot-cold standby costs a tenth (backups, storage) until it is deployed.",
		"Pay-per-token deployments cost nothing while idle; provisioned ones cost the same idle or busy.",
		fmt.Sprintf("Cross-region replication traffic is %.0f%% of one region.", replicationShare*100),
		"Failover itself (a hot-cold deployment, a day on the standby) and people's time are not included.",
	}
	return c
}
