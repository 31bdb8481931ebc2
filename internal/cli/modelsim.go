package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/understudy/understudy/internal/modelsim"
)

func init() {
	var (
		listen, model, version, adminToken, faults string
		ttft                                       time.Duration
		tps                                        float64
		maxTokens, rpm, tpm                        int
	)
	register(&Command{
		Name:  "modelsim",
		Short: "run an OpenAI-compatible model server with deterministic output, a latency profile and faults",
		Usage: "[--listen addr] [--model M] [--version V] [--ttft D] [--tps F] [--max-tokens N] [--rpm N] [--tpm N] [--admin-token T] [--faults JSON]",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:9001", "address to listen on (port 0 picks a free port; see the ready line)")
			fs.StringVar(&model, "model", modelsim.DefaultModel, "model name")
			fs.StringVar(&version, "version", "2025-04-14", "model version; answers report model \"<model>-<version>\"")
			fs.DurationVar(&ttft, "ttft", 0, "time to first token")
			fs.Float64Var(&tps, "tps", 0, "tokens per second after the first (0: as fast as possible)")
			fs.IntVar(&maxTokens, "max-tokens", modelsim.DefaultMaxTokens, "answer length in tokens when the request sets no max_tokens")
			fs.IntVar(&rpm, "rpm", 0, "requests per minute before 429 (0: unlimited)")
			fs.IntVar(&tpm, "tpm", 0, "tokens per minute before 429 (0: unlimited)")
			fs.StringVar(&adminToken, "admin-token", "", "bearer token required on /admin/* (empty: open)")
			fs.StringVar(&faults, "faults", "", `initial faults as JSON, e.g. '{"error_rate":0.1,"latency":"200ms"}'`)
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			cfg := modelsim.Config{
				Model: model, Version: version, TTFT: ttft, TokensPerSecond: tps,
				MaxTokens: maxTokens, RPM: rpm, TPM: tpm, AdminToken: adminToken,
			}
			if cfg.Model == "" {
				return usageErr("--model: must not be empty")
			}
			if err := cfg.Validate(); err != nil {
				return usageErr("%v", err)
			}
			var f modelsim.Faults
			if faults != "" {
				var err error
				if f, err = modelsim.ParseFaults([]byte(faults)); err != nil {
					return usageErr("--faults: %v", err)
				}
			}
			log := slog.New(slog.NewTextHandler(env.Stderr, nil)).With(slog.String("component", "modelsim"))
			s := modelsim.New(cfg, log)
			if f != (modelsim.Faults{}) {
				s.SetFaults(f)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			if err := s.Start(ctx, ln); err != nil {
				ln.Close()
				return fmt.Errorf("start: %w", err)
			}
			fmt.Fprintf(env.Stdout, "ready component=modelsim url=http://%s\n", ln.Addr())
			<-ctx.Done()
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), modelsim.ShutdownGrace)
			defer cancel()
			if err := s.Close(sctx); err != nil {
				return fmt.Errorf("shut down: %w", err)
			}
			return nil
		},
	})
}
