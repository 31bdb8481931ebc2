package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/controller"
	"github.com/understudy/understudy/internal/drift"
	"github.com/understudy/understudy/internal/topology"
)

func init() {
	register(&Command{
		Name:  "controller",
		Short: "watch the regions, grant the primary's write lease, run failover and failback runbooks",
		Usage: "-f topology.yaml",
		Flags: func(fs *flag.FlagSet) { fs.String("f", "topology.yaml", "topology file") },
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			t, err := loadTopology(env, fs)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(env.Stderr, nil)).With("component", "controller")
			// Drift checks every 10 s: the controller refuses an automatic
			// failover to a NOT_READY region, and status shows the verdicts.
			// Agent definitions are left out: the runbook applies them to the
			// new primary, so a standby without them is still a good target.
			var checks []string
			for _, c := range drift.Checks() {
				if c != drift.CheckAgents {
					checks = append(checks, c)
				}
			}
			checker := drift.NewChecker(t, 10*time.Second, drift.Options{Checks: checks}, log.With("component", "drift"))
			c, err := controller.New(t, controller.Options{
				Logger: log, TopologyPath: fs.Lookup("f").Value.String(),
				ReadyCheck: checker.ReadyCheck,
				Drift: func() map[string]string {
					r, ok := checker.Last()
					if !ok {
						return nil
					}
					v := map[string]string{}
					for _, rr := range r.Regions {
						v[rr.Region] = string(rr.Verdict)
					}
					return v
				},
			})
			if err != nil {
				return err
			}
			if err := checker.Start(ctx); err != nil {
				return err
			}
			defer checker.Close(context.Background())
			ln, err := net.Listen("tcp", t.Controller.Listen)
			if err != nil {
				return fmt.Errorf("listen %s: %w", t.Controller.Listen, err)
			}
			fmt.Fprintf(env.Stdout, "ready component=controller url=http://%s\n", ln.Addr())
			return c.Run(ctx, ln)
		},
	})
	register(&Command{
		Name:  "status",
		Short: "show regions, roles, epoch, replication, the runbook's progress and the last RTO and RPO",
		Usage: "-f topology.yaml [--json]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.Bool("json", false, "print the controller's status as JSON")
		},
		Run: runStatus,
	})
	register(&Command{
		Name:  "failover",
		Short: "move the primary role to another region (planned and zero-loss when the primary answers)",
		Usage: "-f topology.yaml [--to REGION] [--dry-run]",
		Flags: moveFlags,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			return runMove(ctx, env, fs, args, "failover")
		},
	})
	register(&Command{
		Name:  "failback",
		Short: "move the primary role back to the topology's primary region, zero-loss",
		Usage: "-f topology.yaml [--dry-run]",
		Flags: moveFlags,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			return runMove(ctx, env, fs, args, "failback")
		},
	})
	register(&Command{
		Name:  "approve",
		Short: "start the failover that waits for approval (controller.approval: true)",
		Usage: "-f topology.yaml",
		Flags: func(fs *flag.FlagSet) { fs.String("f", "topology.yaml", "topology file") },
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			t, err := loadTopology(env, fs)
			if err != nil {
				return err
			}
			var run controller.Run
			if err := controllerCall(ctx, t, "POST", "/v1/approve", nil, &run); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "approved: %s %s → %s started\n", run.ID, run.From, run.To)
			return nil
		},
	})
}

func moveFlags(fs *flag.FlagSet) {
	fs.String("f", "topology.yaml", "topology file")
	fs.String("to", "", "target region (failover; default the best-priority region that is not primary)")
	fs.Bool("dry-run", false, "print the plan without acting")
	fs.Bool("wait", true, "wait until the runbook ends and print its report")
}

// controllerCall calls the controller's API with the admin token.
func controllerCall(ctx context.Context, t *topology.Topology, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, t.Controller.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.Admin.Token.Value())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("controller at %s: %w", t.Controller.URL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.Unmarshal(data, &e)
		return fmt.Errorf("controller: %s: %s", resp.Status, e.Error.Message)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func runMove(ctx context.Context, env *Env, fs *flag.FlagSet, args []string, kind string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	t, err := loadTopology(env, fs)
	if err != nil {
		return err
	}
	to := fs.Lookup("to").Value.String()
	dry := fs.Lookup("dry-run").Value.String() == "true"
	if dry {
		var plan struct {
			Planned bool   `json:"planned"`
			Plan    string `json:"plan"`
		}
		if err := controllerCall(ctx, t, "POST", "/v1/"+kind, map[string]any{"to": to, "dry_run": true}, &plan); err != nil {
			return err
		}
		mode := "unplanned (the primary does not answer): fence by lease, promote"
		if plan.Planned {
			mode = "planned, zero-loss: writes pause while the target catches up"
		}
		fmt.Fprintf(env.Stdout, "%s\n%s", mode, plan.Plan)
		return nil
	}
	var run controller.Run
	if err := controllerCall(ctx, t, "POST", "/v1/"+kind, map[string]any{"to": to}, &run); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s %s: %s → %s started\n", kind, run.ID, run.From, run.To)
	if fs.Lookup("wait").Value.String() != "true" {
		return nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		var got controller.Run
		if err := controllerCall(ctx, t, "GET", "/v1/runs/"+run.ID, nil, &got); err != nil {
			return err
		}
		if got.Status == controller.RunCompleted || got.Status == controller.RunFailed {
			printRun(env.Stdout, &got)
			if got.Status == controller.RunFailed {
				return fmt.Errorf("%s failed: %s", kind, got.Error)
			}
			return nil
		}
	}
}

func runStatus(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	t, err := loadTopology(env, fs)
	if err != nil {
		return err
	}
	var st controller.Status
	if err := controllerCall(ctx, t, "GET", "/v1/status", nil, &st); err != nil {
		return err
	}
	if fs.Lookup("json").Value.String() == "true" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	w := env.Stdout
	fmt.Fprintf(w, "primary %s, epoch %d, pattern %s\n", st.Primary, st.Epoch, st.Pattern)
	names := make([]string, 0, len(st.Regions))
	for n := range st.Regions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := st.Regions[n]
		health := "up"
		if !v.Up {
			health = "DOWN"
		} else if !v.LastOK {
			health = "failing"
		}
		rd := v.Readiness
		line := fmt.Sprintf("  %-12s %-8s role %-8s epoch %d position %d", n, health, orDash(rd.Role), rd.Epoch, rd.Position)
		for peer, lag := range rd.Replication {
			line += fmt.Sprintf("; lag to %s %d events %.2fs", peer, lag.Events, lag.Seconds)
		}
		if e := rd.Engine; e != nil { // PostgreSQL streaming replication
			if rd.Role == "primary" {
				line += fmt.Sprintf("; postgres synchronous %v, %v standby(s) streaming, lag %v bytes", e["synchronous"], e["standbys_streaming"], e["lag_bytes"])
			} else {
				line += fmt.Sprintf("; postgres receiving %v, replay lag %v bytes", e["receiving"], e["replay_lag_bytes"])
			}
		}
		if v.LastError != "" {
			line += " (" + v.LastError + ")"
		}
		fmt.Fprintln(w, line)
	}
	if len(st.Drift) > 0 {
		var vs []string
		for _, n := range names {
			if v, ok := st.Drift[n]; ok {
				vs = append(vs, n+" "+v)
			}
		}
		fmt.Fprintf(w, "  drift: %s\n", strings.Join(vs, ", "))
	}
	if !st.CooldownUntil.IsZero() {
		fmt.Fprintf(w, "  no automatic failover before %s (cooldown)\n", st.CooldownUntil.Format(time.RFC3339))
	}
	for _, r := range []*controller.Run{st.Pending, st.Active, st.Last} {
		if r != nil {
			printRun(w, r)
		}
	}
	return nil
}

func printRun(w io.Writer, r *controller.Run) {
	fmt.Fprintf(w, "%s %s: %s → %s, %s", r.Kind, r.ID, r.From, r.To, r.Status)
	if r.Planned {
		fmt.Fprint(w, " (planned)")
	}
	fmt.Fprintln(w)
	for _, s := range r.Steps {
		took := ""
		if !s.Ended.IsZero() && !s.Started.IsZero() {
			took = s.Ended.Sub(s.Started).Round(time.Millisecond).String()
		}
		line := fmt.Sprintf("  %-18s %-8s %s", s.Name, s.Status, took)
		if s.Error != "" {
			line += "  " + s.Error
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if v, ok := r.Data["rto_ms"]; ok {
		fmt.Fprintf(w, "  RTO %vms (target %vms, met %v); RPO %v events, %vs; quarantined %v\n",
			v, r.Data["rto_target_ms"], r.Data["rto_met"], r.Data["rpo_events"], r.Data["rpo_seconds"], r.Data["quarantined"])
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
