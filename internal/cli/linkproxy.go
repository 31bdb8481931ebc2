package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/linkproxy"
)

func init() {
	register(&Command{
		Name:  "linkproxy",
		Short: "run a TCP proxy that adds latency to a link or cuts it (for drills)",
		Usage: "--listen ADDR --upstream ADDR [--latency 20ms] [--jitter 0s] [--admin ADDR --admin-token T]",
		Flags: func(fs *flag.FlagSet) {
			fs.String("name", "link", "link name in logs and in the admin API")
			fs.String("listen", "127.0.0.1:0", "address clients connect to (port 0 picks one)")
			fs.String("upstream", "", "address every connection is forwarded to (required); several, comma-separated, are balanced round robin per connection")
			fs.Duration("latency", 0, "one-way latency added in each direction")
			fs.Duration("jitter", 0, "each chunk's delay varies within ±jitter")
			fs.String("admin", "", "address of the admin API (cut, blackhole, restore, latency); off when empty")
			fs.String("admin-token", "", "bearer token the admin API requires (required unless --admin is on loopback)")
		},
		Run: runLinkproxy,
	})
}

func runLinkproxy(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected arguments %q", args)
	}
	get := func(name string) string { return fs.Lookup(name).Value.String() }
	dur := func(name string) time.Duration { return fs.Lookup(name).Value.(flag.Getter).Get().(time.Duration) }
	cfg := linkproxy.Config{
		Name:     get("name"),
		Listen:   get("listen"),
		Upstream: get("upstream"),
		Latency:  dur("latency"),
		Jitter:   dur("jitter"),
	}
	if cfg.Upstream == "" {
		return usageErr("--upstream is required")
	}
	if ups := strings.Split(cfg.Upstream, ","); len(ups) > 1 {
		cfg.Upstream, cfg.Upstreams = "", ups
	}
	if err := cfg.Validate(); err != nil {
		return usageErr("%v", err)
	}
	adminAddr, token := get("admin"), get("admin-token")
	if adminAddr != "" && token == "" && !linkproxyLoopback(adminAddr) {
		return usageErr("--admin-token is required when --admin %s is not a loopback address", adminAddr)
	}

	log := slog.New(slog.NewTextHandler(env.Stderr, nil)).With("component", "linkproxy")
	p := linkproxy.New(cfg, log)
	if err := p.Start(ctx); err != nil {
		return err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Close(sctx)
	}
	ready := fmt.Sprintf("ready component=linkproxy url=tcp://%s", p.Addr())

	var srv *http.Server
	serveErr := make(chan error, 1)
	if adminAddr != "" {
		ln, err := net.Listen("tcp", adminAddr)
		if err != nil {
			stop()
			return fmt.Errorf("admin listen: %w", err)
		}
		srv = &http.Server{
			Handler:           linkproxy.AdminHandler(map[string]*linkproxy.Proxy{cfg.Name: p}, token),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
		}
		go func() { serveErr <- srv.Serve(ln) }()
		ready += fmt.Sprintf(" admin=http://%s", ln.Addr())
	}
	fmt.Fprintln(env.Stdout, ready)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("admin server: %w", err)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("admin shutdown: %w", serr)
		}
		cancel()
	}
	if cerr := stop(); err == nil {
		err = cerr
	}
	return err
}

// linkproxyLoopback reports whether addr's host is a loopback address or localhost.
func linkproxyLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
