package up

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// ComponentStatus is a component as the control API lists it.
type ComponentStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Region  string `json:"region,omitempty"`
	Pid     int    `json:"pid"`
	URL     string `json:"url"`
	Running bool   `json:"running"`
	Exit    string `json:"exit,omitempty"`
}

// Components lists every component and whether it runs.
func (u *Up) Components() []ComponentStatus {
	var out []ComponentStatus
	for _, p := range u.procs.list() {
		cs := ComponentStatus{Name: p.Name, Kind: p.Kind, Region: p.Region, Pid: p.Pid(), URL: p.URL, Running: true}
		select {
		case <-p.Done():
			cs.Running, cs.Exit = false, exitErr(p.err)
		default:
		}
		out = append(out, cs)
	}
	return out
}

// Signal sends sig to the named component.
func (u *Up) Signal(name string, sig syscall.Signal) error {
	p := u.procs.get(name)
	if p == nil {
		return fmt.Errorf("no component %q", name)
	}
	return p.Signal(sig)
}

// Kill sends SIGKILL to the named component and waits for it to exit.
func (u *Up) Kill(ctx context.Context, name string) error {
	p := u.procs.get(name)
	if p == nil {
		return fmt.Errorf("no component %q", name)
	}
	p.Signal(syscall.SIGKILL) // an error means it has exited already
	select {
	case <-p.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart starts the named component again with the same arguments, once
// it has exited, and waits until it is ready. A running component is left
// alone.
func (u *Up) Restart(ctx context.Context, name string) error {
	p := u.procs.get(name)
	if p == nil {
		return fmt.Errorf("no component %q", name)
	}
	select {
	case <-p.Done():
	default:
		return nil
	}
	np, err := start(ctx, u.opts.Binary, p.Spec, p.Log, u.opts.ReadyTimeout)
	if err != nil {
		return err
	}
	u.procs.replace(np)
	u.watch(np)
	if np.Replica > 0 {
		if err := u.balance(ctx, np.Region); err != nil {
			return err
		}
	}
	fmt.Fprintf(u.opts.Stdout, "restarted component=%s region=%s url=%s\n", np.Kind, np.Region, np.URL)
	return u.writeState()
}

// Region returns the names of a region's components in start order.
func (u *Up) Region(region string) []string {
	var names []string
	for _, p := range u.procs.list() {
		if p.Region == region {
			names = append(names, p.Name)
		}
	}
	return names
}

// ControlHandler serves the control API with the admin token:
//
//	GET  /v1/components
//	POST /v1/components/{name...}/kill|stop|cont|start
//	POST /v1/regions/{region}/down   SIGKILL every component of the region
//
// kill and down answer once the processes have exited.
//
//	POST /v1/regions/{region}/up     start the region's stopped components
//	POST /v1/regions/{region}/partition  cut the region off from the edge,
//	                                     the controller and the other regions
//	POST /v1/regions/{region}/heal       undo it
//
// partition and heal answer a PartitionResult: the method used (netns: the
// namespace end of the region's veth pair down; linkproxy: its link
// proxies cut) and what was done.
func (u *Up) ControlHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": u.Components()})
	})
	mux.HandleFunc("POST /v1/components/", func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/v1/components/")
		i := strings.LastIndex(rest, "/")
		if i < 0 {
			writeErr(w, http.StatusNotFound, "want /v1/components/{name}/kill|stop|cont|start")
			return
		}
		name, action := rest[:i], rest[i+1:]
		var err error
		switch action {
		case "kill":
			err = u.Kill(r.Context(), name)
		case "stop":
			err = u.Signal(name, syscall.SIGSTOP)
		case "cont":
			err = u.Signal(name, syscall.SIGCONT)
		case "start":
			err = u.Restart(r.Context(), name)
		default:
			writeErr(w, http.StatusNotFound, "unknown action "+action)
			return
		}
		answer(w, err, u)
	})
	mux.HandleFunc("POST /v1/regions/{region}/{action}", func(w http.ResponseWriter, r *http.Request) {
		names := u.Region(r.PathValue("region"))
		if len(names) == 0 {
			writeErr(w, http.StatusNotFound, "no components in region "+r.PathValue("region"))
			return
		}
		var err error
		switch r.PathValue("action") {
		case "down":
			for _, n := range names {
				if e := u.Kill(r.Context(), n); e != nil && err == nil {
					err = e
				}
			}
		case "up":
			for _, n := range names { // start order: model servers before gateways
				if err = u.Restart(r.Context(), n); err != nil {
					break
				}
			}
		case "partition", "heal":
			res, err := u.Partition(r.Context(), r.PathValue("region"), r.PathValue("action") == "partition")
			if err != nil {
				writeErr(w, http.StatusConflict, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, res)
			return
		default:
			writeErr(w, http.StatusNotFound, "unknown action "+r.PathValue("action"))
			return
		}
		answer(w, err, u)
	})
	return http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeErr(w, http.StatusUnauthorized, "admin token required")
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

func answer(w http.ResponseWriter, err error, u *Up) {
	if err != nil {
		writeErr(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": u.Components()})
}

// serveControl serves the control API on ln.
func (u *Up) serveControl(ln net.Listener) {
	u.control = "http://" + ln.Addr().String()
	u.controlSrv = &http.Server{Handler: u.ControlHandler(u.Topology.Admin.Token.Value()), ReadHeaderTimeout: 10 * time.Second}
	go u.controlSrv.Serve(ln)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg}})
}
