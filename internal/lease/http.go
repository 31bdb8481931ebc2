package lease

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// renewRequest and renewReply are the wire form of a renewal.
type renewRequest struct {
	Region string `json:"region"`
	Epoch  int64  `json:"epoch"`
}

type renewReply struct {
	Epoch      int64  `json:"epoch"`
	TTLMillis  int64  `json:"ttl_ms,omitempty"`
	Primary    string `json:"primary,omitempty"`
	Superseded bool   `json:"superseded,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Handler serves a grantor over HTTP under prefix (e.g. "/v1/lease"):
//
//	POST prefix/renew  {"region","epoch"} → 200 {"epoch","ttl_ms"} | 409 refusal   (renewToken)
//	POST prefix/stop   → 200 {"in_force_ms"}: refuse from now on                    (adminToken)
//	GET  prefix        → {"primary","epoch","stopped"}                               (adminToken)
func Handler(g *Grantor, prefix, renewToken, adminToken string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+prefix+"/renew", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r, renewToken) {
			writeJSON(w, http.StatusUnauthorized, renewReply{Error: "bad or missing token"})
			return
		}
		var req renewRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Region == "" {
			writeJSON(w, http.StatusBadRequest, renewReply{Error: "body must be {\"region\",\"epoch\"}"})
			return
		}
		grant, err := g.Renew(req.Region, req.Epoch)
		if ref, ok := err.(*Refusal); ok {
			writeJSON(w, http.StatusConflict, renewReply{Epoch: ref.Epoch, Primary: ref.Primary, Superseded: ref.Superseded, Error: ref.Reason})
			return
		}
		writeJSON(w, http.StatusOK, renewReply{Epoch: grant.Epoch, TTLMillis: grant.TTL.Milliseconds()})
	})
	mux.HandleFunc("POST "+prefix+"/stop", func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r, adminToken) {
			writeJSON(w, http.StatusUnauthorized, renewReply{Error: "bad or missing token"})
			return
		}
		// Round up: the caller must wait at least as long as the grant lasts.
		inForce := g.Stop()
		writeJSON(w, http.StatusOK, map[string]int64{"in_force_ms": (inForce + time.Millisecond - 1).Milliseconds()})
	})
	mux.HandleFunc("GET "+prefix, func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r, adminToken) {
			writeJSON(w, http.StatusUnauthorized, renewReply{Error: "bad or missing token"})
			return
		}
		p, e, s := g.State()
		writeJSON(w, http.StatusOK, map[string]any{"primary": p, "epoch": e, "stopped": s})
	})
	return mux
}

// HTTPRenewer renews from a grantor served by Handler at base+prefix.
func HTTPRenewer(client *http.Client, baseURL, token string) Renewer {
	return func(ctx context.Context, region string, epoch int64) (Grant, error) {
		body, _ := json.Marshal(renewRequest{Region: region, Epoch: epoch})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/renew", bytes.NewReader(body))
		if err != nil {
			return Grant{}, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return Grant{}, fmt.Errorf("renew at %s: %w", baseURL, err)
		}
		defer resp.Body.Close()
		var rep renewReply
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&rep); err != nil {
			return Grant{}, fmt.Errorf("renew at %s: %s: %w", baseURL, resp.Status, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return Grant{Epoch: rep.Epoch, TTL: time.Duration(rep.TTLMillis) * time.Millisecond}, nil
		case http.StatusConflict:
			return Grant{}, fmt.Errorf("renew at %s: %w", baseURL, &Refusal{rep.Primary, rep.Epoch, rep.Error, rep.Superseded})
		default:
			return Grant{}, fmt.Errorf("renew at %s: %s: %s", baseURL, resp.Status, rep.Error)
		}
	}
}

// StopHTTP stops the grantor at base+prefix and returns how long its last
// grant may still be in force.
func StopHTTP(ctx context.Context, client *http.Client, baseURL, adminToken string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/stop", strings.NewReader(""))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("stop grantor at %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	var rep struct {
		InForce int64 `json:"in_force_ms"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("stop grantor at %s: %s", baseURL, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&rep); err != nil {
		return 0, fmt.Errorf("stop grantor at %s: %w", baseURL, err)
	}
	return time.Duration(rep.InForce) * time.Millisecond, nil
}

func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
