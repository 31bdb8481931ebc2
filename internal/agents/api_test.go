package agents

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestApplyAgentsIdempotently(t *testing.T) {
	e := newEnv(t, true)
	res := e.applyAgents(t, weatherAgent, chatAgent)
	if len(res.Results) != 2 || res.Results[0].Status != "applied" || res.Results[1].Status != "applied" {
		t.Fatalf("first apply = %+v", res)
	}
	// Same content in another key order and format: unchanged.
	reordered := `{"metadata":{"version":"1"},"instructions":"You are a helpful assistant.","model":"gpt-4.1-mini","name":"chat"}`
	res = e.applyAgents(t, reordered)
	if res.Results[0].Status != "unchanged" {
		t.Errorf("re-apply = %+v", res)
	}
	// A new version is applied and becomes the latest.
	v2 := strings.Replace(chatAgent, `"version":"1"`, `"version":"2"`, 1)
	v2 = strings.Replace(v2, "helpful", "terse", 1)
	if res = e.applyAgents(t, v2); res.Results[0].Status != "applied" || res.Results[0].Version != "2" {
		t.Errorf("v2 = %+v", res)
	}
	acks := len(e.acks)

	tests := []struct {
		name, body string
		status     int
		want       string // in the message
	}{
		{"same version, other content", `[` + strings.Replace(chatAgent, "helpful", "rude", 1) + `]`, 409, "change metadata.version"},
		{"unknown deployment", `[{"name":"x","model":"gpt-5","metadata":{"version":"1"}}]`, 400, "agents[0]: model: unknown deployment"},
		{"unknown field", `[{"name":"x","model":"gpt-4.1-mini","metadata":{"version":"1"},"temperature":1}]`, 400, "agents[0]"},
		{"no version", `[` + chatAgent + `,{"name":"y","model":"gpt-4.1-mini"}]`, 400, "agents[1]: metadata.version: required"},
		{"duplicate", `[` + chatAgent + `,` + chatAgent + `]`, 400, "agents[1]: name"},
		{"bad schema", `[{"name":"x","model":"gpt-4.1-mini","metadata":{"version":"1"},"tools":[{"type":"function","name":"f","parameters":{"type":"object","required":["a"]}}]}]`, 400, "agents[0]: tools[0].parameters"},
		{"not an array", `{"name":"x"}`, 400, "array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := send(t, http.MethodPut, e.admin.URL+"/admin/agents", tt.body)
			if code != tt.status || !strings.Contains(errorOf(t, body).Message, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", code, body, tt.status, tt.want)
			}
		})
	}
	if len(e.acks) != acks {
		t.Errorf("refused applies wrote %d times", len(e.acks)-acks)
	}

	// The lists show the latest version of each agent with its hash.
	for _, url := range []string{e.srv.URL + "/v1/agents", e.admin.URL + "/admin/agents"} {
		code, body := send(t, http.MethodGet, url, "")
		var l AgentList
		if err := json.Unmarshal(body, &l); code != 200 || err != nil {
			t.Fatalf("%s: %d %s", url, code, body)
		}
		if len(l.Data) != 2 || l.Data[0].Name != "chat" || l.Data[0].Version != "2" || l.Data[1].Name != "weather" || l.Data[1].Model != testDeployment {
			t.Fatalf("%s: %s", url, body)
		}
		d, _ := Parse("v2", []byte(v2))
		if l.Data[0].Hash != d.Hash() {
			t.Errorf("hash %s, want %s", l.Data[0].Hash, d.Hash())
		}
	}
	code, body := e.do(t, "GET", "/v1/agents/chat?version=1", "")
	var one AppliedAgent
	json.Unmarshal(body, &one)
	if code != 200 || one.Version != "1" || !strings.Contains(string(one.Definition), "helpful") {
		t.Errorf("GET chat v1: %d %s", code, body)
	}
	if code, body := e.do(t, "GET", "/v1/agents/nobody", ""); code != 404 || deref(errorOf(t, body).Code) != "agent_not_found" {
		t.Errorf("GET unknown agent: %d %s", code, body)
	}
}

func TestAgentTurnUsesLatestOrPinnedVersion(t *testing.T) {
	e := newEnv(t, true)
	e.applyAgents(t, chatAgent)
	e.applyAgents(t, strings.Replace(strings.Replace(chatAgent, `"version":"1"`, `"version":"2"`, 1), "helpful", "terse", 1))
	for i, tt := range []struct{ ref, want string }{
		{`{"name":"chat"}`, "system:You are a terse assistant."},
		{`{"name":"chat","version":"1"}`, "system:You are a helpful assistant."},
	} {
		code, body := e.do(t, "POST", "/v1/responses", `{"agent":`+tt.ref+`,"input":"hi","instructions":"Use French."}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		if got := roles(e.sim.messages(t, i))[0]; got != tt.want+"\n\nUse French." {
			t.Errorf("%s: system message %q", tt.ref, got)
		}
	}
}
