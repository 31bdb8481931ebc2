package plan

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Budget is what the customer is willing to spend, in the seed guide's cost
// classes: low buys hot-cold, medium hot-warm, high hot-hot.
type Budget string

// The budgets.
const (
	BudgetLow    Budget = "low"
	BudgetMedium Budget = "medium"
	BudgetHigh   Budget = "high"
)

// String implements flag.Value.
func (b *Budget) String() string { return string(*b) }

// Set implements flag.Value.
func (b *Budget) Set(s string) error {
	switch v := Budget(strings.ToLower(s)); v {
	case BudgetLow, BudgetMedium, BudgetHigh:
		*b = v
		return nil
	}
	return errors.New("want low, medium or high")
}

// rank orders budgets like patterns' cost: low 0, medium 1, high 2.
func (b Budget) rank() int {
	switch b {
	case BudgetMedium:
		return 1
	case BudgetHigh:
		return 2
	}
	return 0
}

// Residency is where prompts and responses may be processed.
type Residency string

// The residencies.
const (
	ResidencyRegion   Residency = "region"   // only in the selected Azure region
	ResidencyDataZone Residency = "datazone" // only inside a data zone (US, EU)
	ResidencyGlobal   Residency = "global"   // in any region where the model is offered
)

// String implements flag.Value.
func (r *Residency) String() string { return string(*r) }

// Set implements flag.Value.
func (r *Residency) Set(s string) error {
	switch v := Residency(strings.ToLower(s)); v {
	case ResidencyRegion, ResidencyDataZone, ResidencyGlobal:
		*r = v
		return nil
	}
	return errors.New("want region, datazone or global")
}

// Inputs are what the customer tells us.
type Inputs struct {
	// Name of the workload, used in the design document and the starter
	// topology. Default "workload".
	Name string
	// RTO is the longest acceptable time from fault to serving. Required, > 0.
	RTO time.Duration
	// RPO is the longest acceptable span of lost acknowledged writes; 0
	// means none may be lost. Required, >= 0.
	RPO time.Duration
	// Budget is low, medium or high. Required.
	Budget Budget
	// StatefulAgents is true when agents keep server-side state
	// (conversations, responses) that must survive a failover. Default false.
	StatefulAgents bool
	// Residency is region, datazone or global. Default global.
	Residency Residency
	// LatencySensitive asks for predictable latency. Default false.
	LatencySensitive bool
	// Regions are the primary and the secondary region. Default eastus2,
	// centralus (a paired region in one geography, as the seed guide
	// recommends).
	Regions [2]string
	// ModelShare is the share of one region's cost that is model inference;
	// the rest is infrastructure (gateway, store, network, observability).
	// Default 0.7.
	ModelShare float64
}

// DefaultModelShare is ModelShare's default.
const DefaultModelShare = 0.7

// Default fills unset optional inputs.
func (in *Inputs) Default() {
	if in.Name == "" {
		in.Name = "workload"
	}
	if in.Residency == "" {
		in.Residency = ResidencyGlobal
	}
	if in.Regions == [2]string{} {
		in.Regions = [2]string{"eastus2", "centralus"}
	}
	if in.ModelShare == 0 {
		in.ModelShare = DefaultModelShare
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate reports the first problem with defaulted inputs, naming the
// command-line flag it came from.
func (in Inputs) Validate() error {
	switch {
	case in.RTO <= 0:
		return errors.New("--rto: must be more than 0 (for near-zero use e.g. 5s)")
	case in.RPO < 0:
		return errors.New("--rpo: must not be negative")
	}
	var b Budget
	if err := b.Set(string(in.Budget)); err != nil {
		return fmt.Errorf("--budget: %q: %v", in.Budget, err)
	}
	var r Residency
	if err := r.Set(string(in.Residency)); err != nil {
		return fmt.Errorf("--residency: %q: %v", in.Residency, err)
	}
	if !nameRE.MatchString(in.Name) {
		return fmt.Errorf("--name: %q must be letters, digits, '.', '_' or '-'", in.Name)
	}
	for _, reg := range in.Regions {
		if !nameRE.MatchString(reg) {
			return fmt.Errorf("--regions: %q is not a region name", reg)
		}
	}
	if in.Regions[0] == in.Regions[1] {
		return fmt.Errorf("--regions: the two regions must differ (got %s twice)", in.Regions[0])
	}
	if in.ModelShare < 0 || in.ModelShare > 1 {
		return fmt.Errorf("--model-share: %v is not between 0 and 1", in.ModelShare)
	}
	return nil
}

// ParseRegions parses "primary,secondary".
func ParseRegions(s string) ([2]string, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return [2]string{}, fmt.Errorf("--regions: want two regions, primary first (e.g. eastus2,centralus), got %q", s)
	}
	return [2]string{strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])}, nil
}
