package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/understudy/understudy/internal/agents"
	"github.com/understudy/understudy/internal/topology"
)

func init() {
	register(&Command{
		Name:  "agents",
		Short: "list agent definitions, diff them against a region, or apply them",
		Usage: "list|diff|apply -f topology.yaml [--region R]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.String("region", "", "region whose gateway to diff against or apply to (diff, apply)")
			fs.Duration("timeout", 30*time.Second, "bound on the gateway call (diff, apply)")
		},
		Run: runAgents,
	})
}

// errAgentsDiffer makes `agents diff` exit 1 when the region differs.
var errAgentsDiffer = errors.New("the region's agents differ from the files")

func runAgents(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usageErr("want a subcommand: list, diff or apply")
	}
	sub := args[0]
	// Flags may follow the subcommand: agents diff -f t.yaml --region R.
	if err := fs.Parse(args[1:]); err != nil {
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	switch sub {
	case "list", "diff", "apply":
	default:
		return usageErr("unknown subcommand %q: want list, diff or apply", sub)
	}
	t, err := loadTopology(env, fs)
	if err != nil {
		return err
	}
	name := fs.Lookup("region").Value.String()
	region := t.Region(name)
	switch {
	case sub == "list":
	case name == "":
		return usageErr("%s needs --region (one of %v)", sub, t.RegionNames())
	case region == nil:
		return usageErr("--region %q is not in the topology (regions: %v)", name, t.RegionNames())
	}
	deployments := make([]string, len(t.Deployments))
	for i, d := range t.Deployments {
		deployments[i] = d.Name
	}
	defs, err := agents.LoadDir(t.Path(t.Agents.Dir), deployments)
	if err != nil {
		return err
	}
	if sub == "list" {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tMODEL\tTOOLS\tHASH\tFILE")
		for _, d := range defs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Name, d.Version(), d.Model, len(d.Tools), d.Hash(), d.File)
		}
		return tw.Flush()
	}

	c := adminClient(t, region)
	ctx, cancel := context.WithTimeout(ctx, fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration))
	defer cancel()
	switch sub {
	case "diff":
		applied, err := c.List(ctx)
		if err != nil {
			return fmt.Errorf("region %s: %w", name, err)
		}
		changes := agents.Diff(defs, applied)
		for _, ch := range changes {
			fmt.Fprintln(env.Stdout, ch)
		}
		if len(changes) > 0 {
			return fmt.Errorf("%w: %d differences in region %s (`understudy agents apply` adds and updates; it never removes)", errAgentsDiffer, len(changes), name)
		}
		fmt.Fprintf(env.Stdout, "region %s matches the %d definitions\n", name, len(defs))
		return nil
	default: // apply
		results, err := c.Apply(ctx, defs)
		if err != nil {
			return fmt.Errorf("apply to region %s: %w", name, err)
		}
		for _, r := range results {
			fmt.Fprintf(env.Stdout, "%s %s version %s hash %s\n", r.Status, r.Name, r.Version, r.Hash[:min(12, len(r.Hash))])
		}
		return nil
	}
}

func adminClient(t *topology.Topology, r *topology.Region) *agents.AdminClient {
	return &agents.AdminClient{BaseURL: r.URL, Token: t.Admin.Token.Value(), HTTP: &http.Client{}}
}
