package agents

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkAgentTurn is one non-streaming agent turn through the Handler:
// decode, agent lookup, chat call to a real modelsim over loopback, one
// sqlite write (response and its idempotency record), answer.
func BenchmarkAgentTurn(b *testing.B) {
	e := newEnv(b, true)
	e.applyAgents(b, weatherAgent)
	body := []byte(`{"agent_reference":{"type":"agent_reference","name":"weather"},"input":"How is the sky over Oslo today?","tool_choice":"none"}`)
	url := e.srv.URL + "/v1/responses"
	b.ReportAllocs()
	for b.Loop() {
		res, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}
