package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/understudy/understudy/internal/plan"
)

func init() {
	register(&Command{
		Name:  "plan",
		Short: "recommend hot-hot, hot-warm or hot-cold for an RTO, RPO and budget; write a design and a starter topology",
		Usage: "--rto 5m --rpo 0 --budget low|medium|high [--stateful-agents] [--residency region|datazone|global] [--latency-sensitive] [--out DIR]",
		Flags: func(fs *flag.FlagSet) {
			fs.Duration("rto", 0, "recovery time objective: longest acceptable time from fault to serving (required)")
			fs.Duration("rpo", 0, "recovery point objective: longest acceptable span of lost acknowledged writes; 0 loses none (required)")
			fs.Var(new(plan.Budget), "budget", "low, medium or high (required)")
			fs.Bool("stateful-agents", false, "agents keep server-side state (conversations, responses) that must survive a failover")
			residency := plan.ResidencyGlobal
			fs.Var(&residency, "residency", "where inference may be processed: region, datazone or global")
			fs.Bool("latency-sensitive", false, "the workload needs predictable latency")
			fs.String("regions", "eastus2,centralus", "primary and secondary region")
			fs.String("name", "workload", "name of the workload in the design and topology")
			fs.Float64("model-share", plan.DefaultModelShare, "share of one region's cost that is model inference (for the cost estimate)")
			fs.String("out", "", "write DESIGN.md and topology.yaml into this directory")
		},
		Run: runPlan,
	})
}

func runPlan(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"rto", "rpo", "budget"} {
		if !set[name] {
			return usageErr("--%s is required", name)
		}
	}
	get := func(name string) any { return fs.Lookup(name).Value.(flag.Getter).Get() }
	regions, err := plan.ParseRegions(get("regions").(string))
	if err != nil {
		return usageErr("%v", err)
	}
	in := plan.Inputs{
		Name:             get("name").(string),
		RTO:              get("rto").(time.Duration),
		RPO:              get("rpo").(time.Duration),
		Budget:           *fs.Lookup("budget").Value.(*plan.Budget),
		StatefulAgents:   get("stateful-agents").(bool),
		Residency:        *fs.Lookup("residency").Value.(*plan.Residency),
		LatencySensitive: get("latency-sensitive").(bool),
		Regions:          regions,
		ModelShare:       get("model-share").(float64),
	}
	if in.ModelShare == 0 {
		return usageErr("--model-share: must be more than 0")
	}
	in.Default()
	if err := in.Validate(); err != nil {
		return usageErr("%v", err)
	}
	d := plan.Decide(in)
	if err := plan.Report(env.Stdout, d); err != nil {
		return err
	}
	if out := get("out").(string); out != "" {
		paths, err := plan.WriteFiles(out, d)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout)
		for _, p := range paths {
			fmt.Fprintf(env.Stdout, "wrote %s\n", p)
		}
	}
	return nil
}
