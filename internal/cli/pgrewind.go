package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/internal/store/postgres"
	"github.com/understudy/understudy/internal/topology"
)

func init() {
	register(&Command{
		Name:  "pg-rewind",
		Short: "turn a former primary's stopped PostgreSQL into a standby of the current primary (engine replication)",
		Usage: "-f topology.yaml --region <former primary> --data <its data directory> [--from <current primary>] [--slot <name>]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.String("region", "", "the region whose database is rewound (required)")
			fs.String("data", "", "that database's data directory; its server must be stopped (required)")
			fs.String("from", "", "the region whose database is the primary now (default: the one other region whose server is not in recovery)")
			fs.String("slot", "", "a physical replication slot on the current primary for the new standby to stream through (created when missing; the primary then keeps all WAL the standby has not received: drop the slot when the standby is gone for good). Default: none, the primary keeps wal_keep_size")
			fs.String("bin", "", "directory of pg_rewind and pg_basebackup (default: PATH, then the newest /usr/lib/postgresql/*/bin)")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			flagv := func(n string) string { return fs.Lookup(n).Value.String() }
			if flagv("region") == "" || flagv("data") == "" {
				return usageErr("--region and --data are required")
			}
			t, err := loadTopology(env, fs)
			if err != nil {
				return err
			}
			if t.Replication.Transport != "engine" {
				return fmt.Errorf("replication.transport is %s: pg-rewind is for engine replication (journal mode rejoins by itself)", t.Replication.Transport)
			}
			r := t.Region(flagv("region"))
			if r == nil {
				return usageErr("region %q is not in the topology", flagv("region"))
			}
			from := flagv("from")
			if from == "" {
				if from, err = findPrimary(ctx, t, r.Name); err != nil {
					return err
				}
			} else if t.Region(from) == nil || from == r.Name {
				return usageErr("--from %q: want another region of the topology", from)
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
			defer cancel()
			rep, err := postgres.Rewind(ctx, postgres.RewindOptions{Data: flagv("data"), Source: t.Region(from).Store.DSN.Value(), BinDir: flagv("bin"), Slot: flagv("slot")})
			if err != nil {
				return fmt.Errorf("pg-rewind %s: %w", r.Name, err)
			}
			fmt.Fprintf(env.Stdout, "rewound region=%s from=%s method=%s took=%s\n", r.Name, from, rep.Method, rep.Took)
			if rep.Method == "basebackup" {
				fmt.Fprintf(env.Stdout, "  pg_rewind could not rewind (%s); a fresh base backup replaced the data directory, the former one is kept at %s\n",
					firstLine(rep.RewindError), rep.Kept)
			}
			if rep.Slot != "" {
				how := "existing"
				if rep.SlotCreated {
					how = "created"
				}
				fmt.Fprintf(env.Stdout, "  streams through replication slot %s (%s) on %s, which keeps the WAL it has not received; when this standby is gone for good: SELECT pg_drop_replication_slot('%s') on %s\n",
					rep.Slot, how, from, rep.Slot, from)
			}
			fmt.Fprintf(env.Stdout, "next: start %s's PostgreSQL: it streams from %s; `understudy status` shows it as a standby once its gateways read it\n", r.Name, from)
			return nil
		},
	})
}

// findPrimary names the one region other than self whose database is not
// in recovery.
func findPrimary(ctx context.Context, t *topology.Topology, self string) (string, error) {
	var found []string
	var errs []string
	for _, o := range t.Regions {
		if o.Name == self || o.Store.Driver != "postgres" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, o.Store.DSN.Value())
		var standby bool
		if err == nil {
			err = conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&standby)
			conn.Close(cctx)
		}
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", o.Name, err))
		case !standby:
			found = append(found, o.Name)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("cannot tell which region's database is the primary (not in recovery: %v; unreachable: %s): name it with --from",
			found, strings.Join(errs, "; "))
	}
	return found[0], nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
