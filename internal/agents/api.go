package agents

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/understudy/understudy/internal/store"
)

// AppliedAgent is an agent version applied to a region, as GET
// /v1/agents and GET /admin/agents report it.
type AppliedAgent struct {
	Object     string          `json:"object"` // "agent"
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Hash       string          `json:"hash"`
	Model      string          `json:"model"`
	AppliedAt  int64           `json:"applied_at"`
	Definition json.RawMessage `json:"definition"`
}

// AgentList is the list shape of GET /v1/agents and GET /admin/agents: the
// latest applied version of every agent, by name.
type AgentList struct {
	Object string         `json:"object"` // "list"
	Data   []AppliedAgent `json:"data"`
}

// ApplyResult is what PUT /admin/agents did with one definition.
type ApplyResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Hash    string `json:"hash"`
	// Status is "applied" (a new version recorded) or "unchanged" (this
	// name, version and hash were applied before).
	Status string `json:"status"`
}

// ApplyResults is the answer of PUT /admin/agents.
type ApplyResults struct {
	Results []ApplyResult `json:"results"`
}

func appliedAgent(av store.AgentVersion) AppliedAgent {
	var d struct {
		Model string `json:"model"`
	}
	json.Unmarshal(av.Definition, &d)
	return AppliedAgent{Object: "agent", Name: av.Name, Version: av.Version, Hash: av.Hash, Model: d.Model,
		AppliedAt: av.AppliedAt.Unix(), Definition: av.Definition}
}

// latestAgents is the latest applied version of every agent, by name.
func latestAgents(all []store.AgentVersion) []AppliedAgent {
	out := []AppliedAgent{}
	for i, av := range all { // by name, then apply order
		if i+1 < len(all) && all[i+1].Name == av.Name {
			continue
		}
		out = append(out, appliedAgent(av))
	}
	return out
}

func (s *Service) listAgents(w http.ResponseWriter, r *http.Request) error {
	all, err := s.st.AgentVersions(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AgentList{Object: "list", Data: latestAgents(all)})
}

func (s *Service) getAgent(w http.ResponseWriter, r *http.Request) error {
	name, version := r.PathValue("name"), r.URL.Query().Get("version")
	av, err := s.st.AgentVersion(r.Context(), name, version)
	if errors.Is(err, store.ErrNotFound) {
		what := "agent " + name
		if version != "" {
			what += " version " + version
		}
		return &apiError{Status: http.StatusNotFound, Code: "agent_not_found", Message: what + " is not applied in this region"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, appliedAgent(av))
}

func (s *Service) adminListAgents(w http.ResponseWriter, r *http.Request) error {
	return s.listAgents(w, r)
}

// applyAgents applies a JSON array of definitions in one write: each is
// parsed strictly and validated (errors name agents[i] and the field),
// then recorded by name, version and hash. Re-applying the same content is
// "unchanged"; the same name and version with other content is a 409, and
// then nothing is applied.
func (s *Service) applyAgents(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return badRequest("", "the body must be a JSON array of agent definitions")
	}
	defs := make([]*Definition, 0, len(raws))
	var problems []string
	names := map[string]int{}
	for i, raw := range raws {
		file := fmt.Sprintf("agents[%d]", i)
		d, err := Parse(file, raw)
		if err == nil {
			deps := s.depList
			if len(deps) == 0 {
				deps = []string{d.Model} // no deployment list: any model
			}
			err = d.Validate(file, deps)
		}
		if err == nil {
			if j, dup := names[d.Name]; dup {
				err = &FileError{File: file, Field: "name", Reason: fmt.Sprintf("agent %q is also agents[%d]", d.Name, j)}
			}
			names[d.Name] = i
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		defs = append(defs, d)
	}
	if len(problems) > 0 {
		return badRequest("agents", "%s", strings.Join(problems, "; "))
	}
	results := make([]ApplyResult, len(defs))
	err = s.update(r.Context(), func(tx *store.Tx) error {
		for i, d := range defs {
			def, err := json.Marshal(d)
			if err != nil {
				return err
			}
			_, applied, err := tx.PutAgentVersion(store.AgentVersion{Name: d.Name, Version: d.Version(), Hash: d.Hash(), Definition: def})
			if err != nil {
				return fmt.Errorf("apply agent %s: %w (change metadata.version to apply new content)", d.Name, err)
			}
			results[i] = ApplyResult{Name: d.Name, Version: d.Version(), Hash: d.Hash(), Status: "unchanged"}
			if applied {
				results[i].Status = "applied"
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ApplyResults{Results: results})
}
