package agents

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzDecodeResponseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4.1-mini","input":"hello"}`,
		`{"agent_reference":{"type":"agent_reference","name":"weather","version":"1"},"input":"hi","conversation":"conv_1"}`,
		`{"agent":{"name":"weather"},"input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]}],"conversation":{"id":"conv_1"}}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"21"}]}],"previous_response_id":"resp_1"}`,
		`{"model":"m","input":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"x"},{"type":"refusal","refusal":"no"}]}]}`,
		`{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}],"tool_choice":{"type":"function","name":"f"}}`,
		`{"model":"m","input":"x","stream":true,"store":false,"metadata":{"k":"v"},"temperature":0.5,"top_p":1,"max_output_tokens":10}`,
		`{"model":"m","input":"x","conversation":"conv_1","previous_response_id":"resp_1"}`,
		`{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`,
		`{"input":7}`,
		`[]`,
		`{"model":"m","input":"\u0000\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeResponseRequest(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Message == "" {
				t.Fatalf("error %v is not a 400 API error", err)
			}
			return
		}
		switch {
		case len(req.Input) == 0:
			t.Fatal("accepted without input")
		case req.Model == "" && req.Agent == nil:
			t.Fatal("accepted without model or agent")
		case req.Conversation != "" && req.PreviousResponseID != "":
			t.Fatal("accepted conversation with previous_response_id")
		case len(req.Hash) != 64:
			t.Fatalf("hash %q", req.Hash)
		}
		// Every input item survives the round trip through its stored form.
		for i, it := range req.Input {
			if it.ID == "" || !strings.Contains(it.ID, "_") {
				t.Fatalf("input[%d] id %q", i, it.ID)
			}
			b, err := json.Marshal(it)
			if err != nil {
				t.Fatal(err)
			}
			back, err := decodeItem(b, "x")
			if err != nil {
				t.Fatalf("input[%d] %s does not decode back: %v", i, b, err)
			}
			if !reflect.DeepEqual(back, it) {
				t.Fatalf("input[%d] round trip\n%#v\n%#v", i, it, back)
			}
		}
		msgs := chatMessages("instr", req.Input)
		if _, err := json.Marshal(chatRequest{Model: "m", Messages: msgs, Tools: chatTools(req.Tools), ToolChoice: chatToolChoice(req.ToolChoice)}); err != nil {
			t.Fatal(err)
		}
	})
}
