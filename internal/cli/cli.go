// Package cli is the command registry of the understudy binary. Each
// subcommand lives in its own file and registers itself with register in an
// init function; Main dispatches to it with injected standard streams.
//
// Exit codes: 0 success and help, 1 failure, 2 misuse (bad flags or
// arguments).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Std returns the process's real environment.
func Std() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Command is one subcommand.
type Command struct {
	Name  string
	Short string // one line for `understudy help`
	Usage string // arguments after the name, for -h
	Run   func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
	// Flags declares the command's flags on fs before parsing; Run receives
	// the parsed set. Flags may be nil.
	Flags func(fs *flag.FlagSet)
}

var commands = map[string]*Command{}

func register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// ErrUsage marks a misuse of a command; Main exits 2 for it.
var ErrUsage = errors.New("usage")

// usageErr returns an error that Main reports as misuse.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Main runs the command named by args[0] and returns the exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		printHelp(env.Stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				fs := newFlagSet(c, env)
				fs.SetOutput(env.Stdout)
				fs.Usage()
				return 0
			}
		}
		printHelp(env.Stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "understudy: unknown command %q (see `understudy help`)\n", name)
		return 2
	}
	fs := newFlagSet(c, env)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := c.Run(ctx, env, fs, fs.Args()); err != nil {
		fmt.Fprintf(env.Stderr, "understudy %s: %v\n", name, err)
		if errors.Is(err, ErrUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func newFlagSet(c *Command, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if c.Flags != nil {
		c.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: understudy %s %s\n\n%s\n", c.Name, c.Usage, c.Short)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "understudy: cross-region failover for LLM and agent workloads")
	fmt.Fprintln(w, "\nusage: understudy <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].Short)
	}
	fmt.Fprintln(w, "\nRun `understudy <command> -h` for a command's flags.")
}
