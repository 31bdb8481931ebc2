package linkproxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"
)

// LinkStatus is the admin API's view of a link.
type LinkStatus struct {
	Name      string `json:"name"`
	Listen    string `json:"listen"`
	Upstream  string `json:"upstream"`
	State     State  `json:"state"`
	Latency   string `json:"latency"` // Go duration, e.g. "20ms"
	Jitter    string `json:"jitter"`
	Active    int    `json:"active_connections"`
	Accepted  int64  `json:"accepted_connections"`
	Refused   int64  `json:"refused_connections"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
}

func viewOf(name string, s Status) LinkStatus {
	return LinkStatus{
		Name: name, Listen: s.Listen, Upstream: s.Upstream, State: s.State,
		Latency: s.Latency.String(), Jitter: s.Jitter.String(),
		Active: s.Active, Accepted: s.Accepted, Refused: s.Refused,
		BytesUp: s.BytesUp, BytesDown: s.BytesDown,
	}
}

// LatencyRequest is the body of PUT /links/{name}/latency. An omitted
// jitter is 0s.
type LatencyRequest struct {
	Latency string `json:"latency"`
	Jitter  string `json:"jitter"`
}

// AdminHandler serves the controls of proxies, keyed by link name:
//
//	GET  /links                      every link's status
//	GET  /links/{name}               one link's status
//	POST /links/{name}/cut           Cut
//	POST /links/{name}/blackhole     Blackhole
//	POST /links/{name}/restore       Restore
//	PUT  /links/{name}/latency       SetLatency from {"latency":"20ms","jitter":"0s"}
//
// When token is not empty every request must carry "Authorization: Bearer
// <token>". Changes answer with the link's new status. The map is copied.
func AdminHandler(proxies map[string]*Proxy, token string) http.Handler {
	a := &admin{proxies: maps.Clone(proxies)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /links", a.handle(a.list))
	mux.HandleFunc("GET /links/{name}", a.handle(a.get))
	mux.HandleFunc("POST /links/{name}/{action}", a.handle(a.act))
	mux.HandleFunc("PUT /links/{name}/latency", a.handle(a.setLatency))
	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h)
	return requireToken(token, h)
}

type admin struct {
	proxies map[string]*Proxy
}

// httpError is an error with the status it answers with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, a ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, a...)}
}

// handle adapts a handler that returns a value to encode or an error.
func (a *admin) handle(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			code := http.StatusInternalServerError
			msg := "internal error"
			if he, ok := errors.AsType[*httpError](err); ok {
				code, msg = he.code, he.msg
			}
			writeJSON(w, code, map[string]any{"error": map[string]string{"message": msg}})
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (a *admin) proxy(r *http.Request) (string, *Proxy, error) {
	name := r.PathValue("name")
	p, ok := a.proxies[name]
	if !ok {
		return "", nil, errorf(http.StatusNotFound, "no link named %q", name)
	}
	return name, p, nil
}

func (a *admin) list(r *http.Request) (any, error) {
	names := slices.Sorted(maps.Keys(a.proxies))
	out := make([]LinkStatus, 0, len(names))
	for _, n := range names {
		out = append(out, viewOf(n, a.proxies[n].Status()))
	}
	return map[string]any{"links": out}, nil
}

func (a *admin) get(r *http.Request) (any, error) {
	name, p, err := a.proxy(r)
	if err != nil {
		return nil, err
	}
	return viewOf(name, p.Status()), nil
}

func (a *admin) act(r *http.Request) (any, error) {
	name, p, err := a.proxy(r)
	if err != nil {
		return nil, err
	}
	switch action := r.PathValue("action"); action {
	case "cut":
		p.Cut()
	case "blackhole":
		p.Blackhole()
	case "restore":
		p.Restore()
	default:
		return nil, errorf(http.StatusNotFound, "unknown action %q (want cut, blackhole or restore)", action)
	}
	return viewOf(name, p.Status()), nil
}

func (a *admin) setLatency(r *http.Request) (any, error) {
	name, p, err := a.proxy(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	var req LatencyRequest
	if err := dec.Decode(&req); err != nil {
		return nil, errorf(http.StatusBadRequest, "body: want {\"latency\":\"20ms\",\"jitter\":\"0s\"}: %v", err)
	}
	lat, err := parseDuration("latency", req.Latency, true)
	if err != nil {
		return nil, err
	}
	jit, err := parseDuration("jitter", req.Jitter, false)
	if err != nil {
		return nil, err
	}
	if err := p.SetLatency(lat, jit); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return viewOf(name, p.Status()), nil
}

func parseDuration(field, s string, required bool) (time.Duration, error) {
	if s == "" {
		if required {
			return 0, errorf(http.StatusBadRequest, "%s: required, e.g. \"20ms\"", field)
		}
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errorf(http.StatusBadRequest, "%s: %q is not a non-negative duration like \"20ms\"", field, s)
	}
	return d, nil
}

func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="linkproxy"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"message": "missing or wrong bearer token"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}
