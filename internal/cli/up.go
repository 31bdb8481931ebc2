package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/understudy/understudy/internal/up"
)

func init() {
	register(&Command{
		Name:  "up",
		Short: "start every component of a topology, one process each, until Ctrl-C",
		Usage: "-f topology.yaml",
		Flags: func(fs *flag.FlagSet) {
			fs.String("f", "topology.yaml", "topology file")
			fs.Duration("ready-timeout", 20*time.Second, "how long each component may take to become ready")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			u, err := up.New(fs.Lookup("f").Value.String(), up.Options{
				Stdout:       env.Stdout,
				Getenv:       env.Getenv,
				Has:          func(name string) bool { return commands[name] != nil },
				ReadyTimeout: fs.Lookup("ready-timeout").Value.(flag.Getter).Get().(time.Duration),
			})
			if err != nil {
				return err
			}
			if err := u.Start(ctx); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "up: %d components running; control=%s; logs in %s; Ctrl-C stops them\n",
				len(u.Procs()), u.Control(), u.Topology.Path(u.Topology.DataDir)+"/logs")
			u.Wait(ctx)
			return u.Close(context.Background())
		},
	})
}
