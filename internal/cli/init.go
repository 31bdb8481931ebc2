package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/understudy/understudy/internal/topology"
)

// exampleAgent is the agent definition `init` writes beside the topology.
const exampleAgent = `# An agent kept as code: applied to every region by name and version.
name: support-agent
model: gpt-4.1-mini
instructions: |
  You are a concise support agent. Look up orders with the get_order_status tool
  before answering questions about them.
tools:
  - type: function
    name: get_order_status
    description: Look up the status of an order by its id.
    parameters:
      type: object
      properties:
        order_id:
          type: string
          description: The order id, e.g. A-1001.
      required: [order_id]
metadata:
  version: "1"
  owner: platform-team
`

func init() {
	register(&Command{
		Name:  "init",
		Short: "write a working two-region example topology and agent definition",
		Usage: "[--dir DIR] [--force]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("dir", ".", "directory to write topology.yaml and agents/ into")
			fs.Bool("force", false, "overwrite existing files")
		},
		Run: runInit,
	})
}

func runInit(ctx context.Context, env *Env, fls *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	dir := fls.Lookup("dir").Value.String()
	force := fls.Lookup("force").Value.String() == "true"
	key := "sk-us-" + randHex(16)
	files := map[string][]byte{
		"topology.yaml": topology.ExampleYAML(topology.ExampleOptions{
			Key:               key,
			AdminToken:        "adm-" + randHex(16),
			ReplicationSecret: "rep-" + randHex(16),
			Ports:             topology.DefaultPorts,
		}),
		filepath.Join("agents", "support-agent.yaml"): []byte(exampleAgent),
	}
	if !force {
		for name := range files {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return fmt.Errorf("%s exists (use --force to overwrite)", filepath.Join(dir, name))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "agents"), 0o755); err != nil {
		return err
	}
	for name, data := range files {
		// The topology holds secrets: keep it private to its owner.
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "wrote %s and %s\n", filepath.Join(dir, "topology.yaml"), filepath.Join(dir, "agents", "support-agent.yaml"))
	fmt.Fprintf(env.Stdout, "next: understudy validate -f %s && understudy up -f %[1]s\n", filepath.Join(dir, "topology.yaml"))
	fmt.Fprintf(env.Stdout, "key=%s\n", key)
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
