package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/understudy/understudy/internal/topology"
)

// modelObject is one entry of GET /v1/models: an OpenAI model object plus
// the pinned model and version of the deployment.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Model   string `json:"model"`
	Version string `json:"version"`
}

func modelObjects(ds []topology.Deployment) []modelObject {
	out := make([]modelObject, 0, len(ds))
	for _, d := range ds {
		out = append(out, modelObject{ID: d.Name, Object: "model", OwnedBy: "understudy", Model: d.Model, Version: d.Version})
	}
	return out
}

func modelList(ds []topology.Deployment) []byte {
	b, _ := json.Marshal(map[string]any{"object": "list", "data": modelObjects(ds)})
	return append(b, '\n')
}

// serveModels lists the topology's deployments.
func (g *Gateway) serveModels(w http.ResponseWriter, r *http.Request) error {
	if err := g.clientGate(w, r); err != nil {
		return err
	}
	w.Header()["Content-Type"] = hdrJSON
	w.Write(g.models)
	return nil
}

func (g *Gateway) serveModelByName(w http.ResponseWriter, r *http.Request) error {
	if err := g.clientGate(w, r); err != nil {
		return err
	}
	name := r.PathValue("model")
	for _, m := range modelObjects(g.topo.Deployments) {
		if m.ID == name {
			writeJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return errUnknownDeployment(name)
}

// clientGate authenticates and charges one request to the key's RPM.
func (g *Gateway) clientGate(w http.ResponseWriter, r *http.Request) error {
	k, err := g.authenticate(r)
	if err != nil {
		return err
	}
	if ri := infoOf(w); ri != nil {
		ri.key = k.name
	}
	if err := k.admit(g.now(), 0); err != nil {
		g.m.limited.WithLabelValues("rpm").Inc()
		return err
	}
	return nil
}
