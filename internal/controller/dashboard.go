package controller

import (
	"context"
	"net/http"
	"time"

	"github.com/understudy/understudy/internal/dashboard"
)

// mountDashboard serves the dashboard (package dashboard) at / with its
// aggregate and action endpoints under /v1/dashboard/, behind the admin
// token like the rest of the API. When the controller runs, the
// dashboard's background loop runs with it and stops (a running drill
// included) before Run returns.
func (c *Controller) mountDashboard(mux *http.ServeMux) {
	d, err := dashboard.New(c.t, dashboard.Options{
		Status:       func() any { return c.Status() },
		Drift:        c.opts.Drift,
		Ready:        c.opts.ReadyCheck,
		Binary:       c.opts.Binary,
		TopologyPath: c.opts.TopologyPath,
		Logger:       c.log.With("part", "dashboard"),
	})
	if err != nil {
		c.log.Error("dashboard", "err", err)
		return
	}
	d.Mount(mux, c.adminOnly)
	if ctx := c.runCtx; ctx != nil {
		d.Start(ctx)
		c.wg.Go(func() {
			<-ctx.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.Close(cctx)
		})
	}
}
