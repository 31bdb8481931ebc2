package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

func inConversation(id string) responses.ResponseNewParamsConversationUnion {
	return responses.ResponseNewParamsConversationUnion{OfString: openai.String(id)}
}

func textInput(s string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
}

// roles summarises chat messages as "role:text" (tool calls as
// "assistant:call name", tool results as "tool:text").
func roles(msgs []map[string]any) []string {
	var out []string
	for _, m := range msgs {
		role, _ := m["role"].(string)
		text, _ := m["content"].(string)
		if calls, ok := m["tool_calls"].([]any); ok {
			for _, c := range calls {
				fn := c.(map[string]any)["function"].(map[string]any)
				text += "call " + fn["name"].(string)
			}
		}
		out = append(out, role+":"+text)
	}
	return out
}

func TestMultiTurnAgentConversation(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	if res := e.applyAgents(t, chatAgent); res.Results[0].Status != "applied" {
		t.Fatalf("apply = %+v", res)
	}
	conv, err := e.client.Conversations.New(ctx, conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	turns := []string{"Hello, my name is Ada.", "What is my name?", "Thanks!"}
	var answers []string
	for i, q := range turns {
		r, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Input: textInput(q), Conversation: inConversation(conv.ID)}, agentRef("chat"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "completed" || r.OutputText() == "" || r.Conversation.ID != conv.ID || r.Model != testDeployment {
			t.Fatalf("turn %d: %s", i, r.RawJSON())
		}
		if ref := r.JSON.ExtraFields["agent_reference"].Raw(); !strings.Contains(ref, `"name":"chat"`) || !strings.Contains(ref, `"version":"1"`) {
			t.Errorf("agent_reference = %s", ref)
		}
		answers = append(answers, r.OutputText())

		// The model saw the instructions and every earlier turn.
		want := []string{"system:You are a helpful assistant."}
		for j := 0; j <= i; j++ {
			want = append(want, "user:"+turns[j])
			if j < i {
				want = append(want, "assistant:"+answers[j])
			}
		}
		if got := roles(e.sim.messages(t, i)); !slices.Equal(got, want) {
			t.Errorf("turn %d: backend got\n%q\nwant\n%q", i, got, want)
		}
	}
	// Items accumulate: user, assistant per turn, in order.
	page, err := e.client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{Order: "asc"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range page.Data {
		got = append(got, it.Role+":"+it.AsMessage().Content[0].Text)
	}
	var want []string
	for i := range turns {
		want = append(want, "user:"+turns[i], "assistant:"+answers[i])
	}
	if !slices.Equal(got, want) {
		t.Errorf("conversation items\n%q\nwant\n%q", got, want)
	}
	if len(e.acks) != 5 {
		t.Errorf("AfterWrite called %d times, want 5 (apply, conversation, 3 turns)", len(e.acks))
	}
}

func TestPreviousResponseChain(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	first, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("first"), Instructions: openai.String("Be brief.")})
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("second"), PreviousResponseID: openai.String(first.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("third"), PreviousResponseID: openai.String(second.ID)}); err != nil {
		t.Fatal(err)
	}
	want := []string{"user:first", "assistant:" + first.OutputText(), "user:second", "assistant:" + second.OutputText(), "user:third"}
	if got := roles(e.sim.messages(t, 2)); !slices.Equal(got, want) {
		t.Errorf("backend got %q, want %q", got, want)
	}
	// A fork from the first response sees only the first turn.
	if _, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("fork"), PreviousResponseID: openai.String(first.ID)}); err != nil {
		t.Fatal(err)
	}
	if got, want := roles(e.sim.messages(t, 3)), []string{"user:first", "assistant:" + first.OutputText(), "user:fork"}; !slices.Equal(got, want) {
		t.Errorf("fork: backend got %q, want %q", got, want)
	}
	// Get and input_items.
	got, err := e.client.Responses.Get(ctx, second.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != second.OutputText() || got.PreviousResponseID != first.ID {
		t.Fatalf("get = %v, %v", got, err)
	}
	if strings.Contains(got.RawJSON(), "understudy_input") {
		t.Errorf("stored input leaked into the answer: %s", got.RawJSON())
	}
	items, err := e.client.Responses.InputItems.List(ctx, second.ID, responses.InputItemListParams{})
	if err != nil || len(items.Data) != 1 || items.Data[0].AsMessage().Content[0].Text != "second" {
		t.Fatalf("input items = %v, %v", items, err)
	}
	// A store:false turn is answered but not kept.
	eph, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("x"), Store: openai.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Responses.Get(ctx, eph.ID, responses.ResponseGetParams{})
	apiErr(t, err, http.StatusNotFound, "not_found")
	// Delete.
	if err := e.client.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("x"), PreviousResponseID: openai.String(second.ID)})
	if e := apiErr(t, err, http.StatusNotFound, "not_found"); e.Param != "previous_response_id" {
		t.Errorf("param = %q", e.Param)
	}
}

func TestFunctionCallRoundTrip(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newEnv(t, true)
			ctx := context.Background()
			e.applyAgents(t, weatherAgent)
			conv, err := e.client.Conversations.New(ctx, conversations.ConversationNewParams{})
			if err != nil {
				t.Fatal(err)
			}
			var types []string // collapsed event types of the last streamed turn
			run := func(p responses.ResponseNewParams) *responses.Response {
				t.Helper()
				p.Conversation = inConversation(conv.ID)
				if !stream {
					r, err := e.client.Responses.New(ctx, p, agentRef("weather"))
					if err != nil {
						t.Fatal(err)
					}
					return r
				}
				evs := collect(t, e.client.Responses.NewStreaming(ctx, p, agentRef("weather")))
				types = types[:0]
				for i, ev := range evs {
					if ev.SequenceNumber != int64(i) {
						t.Errorf("event %d has sequence_number %d", i, ev.SequenceNumber)
					}
					if len(types) == 0 || types[len(types)-1] != ev.Type {
						types = append(types, ev.Type)
					}
				}
				last := evs[len(evs)-1]
				if last.Type != "response.completed" {
					t.Fatalf("last event %s", last.Type)
				}
				r := last.Response
				return &r
			}

			first := run(responses.ResponseNewParams{Input: textInput("What is the weather in Paris?")})
			if len(first.Output) != 1 || first.Output[0].Type != "function_call" {
				t.Fatalf("first turn output: %s", first.RawJSON())
			}
			call := first.Output[0].AsFunctionCall()
			if call.Name != "get_weather" || call.Arguments != `{"city":"Paris"}` || call.CallID == "" || !strings.HasPrefix(call.ID, "fc_") {
				t.Fatalf("call = %+v", call)
			}
			if want := []string{"response.created", "response.in_progress", "response.output_item.added",
				"response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
				"response.completed"}; stream && !slices.Equal(types, want) {
				t.Errorf("call events\n%q\nwant\n%q", types, want)
			}
			if tools := roles(e.sim.messages(t, 0)); tools[0] != "system:You answer questions about the weather." {
				t.Errorf("instructions not sent: %q", tools)
			}

			out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"temp_c":21,"sky":"clear"}`)
			out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
			final := run(responses.ResponseNewParams{Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}}})
			if got, want := final.OutputText(), `The tool returned: "{"temp_c":21,"sky":"clear"}".`; got != want {
				t.Errorf("final text = %q, want %q", got, want)
			}
			wantMsgs := []string{"system:You answer questions about the weather.", "user:What is the weather in Paris?",
				"assistant:call get_weather", `tool:{"temp_c":21,"sky":"clear"}`}
			if got := roles(e.sim.messages(t, 1)); !slices.Equal(got, wantMsgs) {
				t.Errorf("backend got %q, want %q", got, wantMsgs)
			}
			page, err := e.client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{Order: "asc"})
			if err != nil {
				t.Fatal(err)
			}
			var itemTypes []string
			for _, it := range page.Data {
				itemTypes = append(itemTypes, it.Type)
			}
			if want := []string{"message", "function_call", "function_call_output", "message"}; !slices.Equal(itemTypes, want) {
				t.Errorf("items %v, want %v", itemTypes, want)
			}
			if page.Data[1].ID != call.ID || page.Data[2].CallID != call.CallID {
				t.Errorf("stored call %s/%s, want %s/%s", page.Data[1].ID, page.Data[2].CallID, call.ID, call.CallID)
			}
			// An output that answers no call is refused before the model runs.
			bad := responses.ResponseInputItemParamOfFunctionCallOutput("x")
			bad.OfFunctionCallOutput.CallID = openai.String("call_unknown")
			_, err = e.client.Responses.New(ctx, responses.ResponseNewParams{Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{bad}}, Conversation: inConversation(conv.ID)}, agentRef("weather"))
			if e := apiErr(t, err, http.StatusBadRequest, "invalid_request"); e.Param != "input[0].call_id" {
				t.Errorf("param = %q", e.Param)
			}
			if n := len(e.sim.calls()); n != 2 {
				t.Errorf("model called %d times, want 2", n)
			}
		})
	}
}

// collect reads a whole Responses stream.
func collect(t *testing.T, s interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) []responses.ResponseStreamEventUnion {
	t.Helper()
	var evs []responses.ResponseStreamEventUnion
	for s.Next() {
		evs = append(evs, s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestStreamingResponses(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := responses.ResponseNewParams{Model: testDeployment, Input: textInput("Tell me about failover."), Instructions: openai.String("Answer in one line.")}
	plain, err := e.client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(t, e.client.Responses.NewStreaming(ctx, p))

	var types []string
	var text strings.Builder
	for i, ev := range evs {
		if ev.SequenceNumber != int64(i) {
			t.Errorf("event %d (%s) has sequence_number %d", i, ev.Type, ev.SequenceNumber)
		}
		if len(types) == 0 || types[len(types)-1] != ev.Type {
			types = append(types, ev.Type)
		}
		if ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if !slices.Equal(types, want) {
		t.Fatalf("event types\n%q\nwant\n%q", types, want)
	}
	if n := countType(evs, "response.output_text.delta"); n < 2 {
		t.Errorf("want several deltas, got %d", n)
	}
	done := evs[len(evs)-1].Response
	if text.String() != plain.OutputText() || done.OutputText() != plain.OutputText() {
		t.Errorf("streamed %q, completed %q, non-stream %q", text.String(), done.OutputText(), plain.OutputText())
	}
	if evs[0].Response.Status != "in_progress" || done.Status != "completed" || done.Usage.OutputTokens == 0 {
		t.Errorf("created %s, completed %s usage %+v", evs[0].Response.Status, done.Status, done.Usage)
	}
	// The streamed turn is stored before response.completed was sent.
	got, err := e.client.Responses.Get(ctx, done.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != plain.OutputText() || got.Output[0].ID != done.Output[0].ID {
		t.Fatalf("stored = %v, %v", got, err)
	}
}

func countType(evs []responses.ResponseStreamEventUnion, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func TestIdempotentRetry(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	e.applyAgents(t, chatAgent)
	conv, err := e.client.Conversations.New(ctx, conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	p := responses.ResponseNewParams{Input: textInput("Hello"), Conversation: inConversation(conv.ID)}
	key := option.WithHeader("Idempotency-Key", "turn-1")
	first, err := e.client.Responses.New(ctx, p, agentRef("chat"), key)
	if err != nil {
		t.Fatal(err)
	}
	var raw *http.Response
	again, err := e.client.Responses.New(ctx, p, agentRef("chat"), key, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.OutputText() != first.OutputText() || raw.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry = %s (replayed %q), want %s", again.ID, raw.Header.Get("Idempotent-Replayed"), first.ID)
	}
	// A retry as a stream replays the stored turn as events.
	evs := collect(t, e.client.Responses.NewStreaming(ctx, p, agentRef("chat"), key))
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	if last := evs[len(evs)-1]; last.Type != "response.completed" || last.Response.ID != first.ID {
		t.Errorf("streamed retry ended %s %s", last.Type, last.Response.ID)
	}
	if n := len(e.sim.calls()); n != 1 {
		t.Errorf("model called %d times, want 1", n)
	}
	page, err := e.client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{})
	if err != nil || len(page.Data) != 2 {
		t.Errorf("conversation holds %d items, want 2 (one turn)", len(page.Data))
	}
	// Same key, other body: 409.
	_, err = e.client.Responses.New(ctx, responses.ResponseNewParams{Input: textInput("Bye"), Conversation: inConversation(conv.ID)}, agentRef("chat"), key)
	apiErr(t, err, http.StatusConflict, "idempotency_key_reused")
	// Another key scope may use the same key.
	e.svc.keyScope = func(context.Context) string { return "other-client" }
	other, err := e.client.Responses.New(ctx, p, agentRef("chat"), key)
	if err != nil || other.ID == first.ID {
		t.Errorf("other scope: %v, %#v", other, err)
	}
}

func TestConcurrentDuplicatesRunOnce(t *testing.T) {
	e := newEnv(t, true)
	body := `{"model":"gpt-4.1-mini","input":"hello"}`
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, b := e.do(t, "POST", "/v1/responses", body, "Idempotency-Key", "dup")
			if code != http.StatusOK {
				t.Errorf("status %d: %s", code, b)
				return
			}
			var r struct{ ID string }
			json.Unmarshal(b, &r)
			ids[i] = r.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("ids %v: want one response", ids)
		}
	}
	if got := len(e.sim.calls()); got != 1 {
		t.Errorf("model called %d times, want 1", got)
	}
	if e.svc.keys.held() != 0 {
		t.Errorf("%d key locks left", e.svc.keys.held())
	}
}

func TestStandbyRefusesWrites(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	if err := e.st.NotePrimary(ctx, "eastus2", 3); err != nil {
		t.Fatal(err)
	}
	check := func(err error) {
		t.Helper()
		ae := apiErr(t, err, http.StatusServiceUnavailable, "not_primary")
		if !strings.Contains(ae.Message, "eastus2") || !strings.Contains(ae.Message, "epoch 3") {
			t.Errorf("message %q does not name the primary", ae.Message)
		}
	}
	_, err := e.client.Responses.New(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("hi")})
	check(err)
	// Marked as a refusal by role, so the edge does not eject the region.
	if ae := apiErr(t, err, http.StatusServiceUnavailable, "not_primary"); ae.Response.Header.Get(RefusalHeader) != "not_primary" {
		t.Errorf("%s: %q, want not_primary", RefusalHeader, ae.Response.Header.Get(RefusalHeader))
	}
	s := e.client.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("hi")})
	for s.Next() {
		t.Errorf("event %s from a standby", s.Current().Type)
	}
	check(s.Err())
	_, err = e.client.Conversations.New(ctx, conversations.ConversationNewParams{})
	check(err)
	if n := len(e.sim.calls()); n != 0 {
		t.Errorf("a standby ran the model %d times", n)
	}
	// Reads are served.
	if code, body := e.do(t, "GET", "/v1/agents", ""); code != http.StatusOK {
		t.Errorf("GET /v1/agents on a standby: %d %s", code, body)
	}
	_, err = e.client.Responses.Get(ctx, "resp_none", responses.ResponseGetParams{})
	apiErr(t, err, http.StatusNotFound, "not_found")
}

func TestAfterWriteFailureIsNeverCompleted(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	e.setAfterWrite(errors.New("standby unreachable"))
	p := responses.ResponseNewParams{Model: testDeployment, Input: textInput("hello")}
	key := option.WithHeader("Idempotency-Key", "k1")

	_, err := e.client.Responses.New(ctx, p, key)
	ae := apiErr(t, err, http.StatusServiceUnavailable, "replication_failed")
	if !strings.Contains(ae.Message, "may not be replicated") {
		t.Errorf("message %q", ae.Message)
	}

	// Streaming: an error event and response.failed, never completed.
	evs := collect(t, e.client.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: testDeployment, Input: textInput("stream me")}))
	if countType(evs, "response.completed") != 0 {
		t.Fatal("response.completed sent for an unacknowledged turn")
	}
	n := len(evs)
	if n < 2 || evs[n-2].Type != "error" || evs[n-2].Code != "replication_failed" || evs[n-1].Type != "response.failed" ||
		evs[n-1].Response.Status != "failed" || evs[n-1].Response.Error.Code != "replication_failed" {
		t.Fatalf("stream ended with %s %s", evs[n-2].RawJSON(), evs[n-1].RawJSON())
	}
	if countType(evs, "response.output_text.delta") == 0 {
		t.Error("no deltas before the failure")
	}

	// Once replication recovers, the retry answers the stored turn
	// without running the model again, after acknowledging it.
	e.setAfterWrite(nil)
	r, err := e.client.Responses.New(ctx, p, key)
	if err != nil {
		t.Fatal(err)
	}
	if calls := len(e.sim.calls()); calls != 2 {
		t.Errorf("model called %d times, want 2 (one per distinct turn)", calls)
	}
	if len(e.acks) != 1 || r.Status != "completed" {
		t.Errorf("acks %v, status %s", e.acks, r.Status)
	}
}

func TestResponseErrors(t *testing.T) {
	e := newEnv(t, true, func(o *Options, _ *env) { o.MaxBodyBytes = 4096 })
	e.applyAgents(t, chatAgent)
	tests := []struct {
		name, body string
		status     int
		param      string
	}{
		{"no model or agent", `{"input":"x"}`, 400, "model"},
		{"no input", `{"model":"gpt-4.1-mini"}`, 400, "input"},
		{"empty input", `{"model":"gpt-4.1-mini","input":[]}`, 400, "input"},
		{"input number", `{"model":"gpt-4.1-mini","input":7}`, 400, "input"},
		{"conversation and previous", `{"model":"gpt-4.1-mini","input":"x","conversation":"conv_1","previous_response_id":"resp_1"}`, 400, "conversation"},
		{"unknown deployment", `{"model":"gpt-5","input":"x"}`, 400, "model"},
		{"hosted tool", `{"model":"gpt-4.1-mini","input":"x","tools":[{"type":"web_search"}]}`, 400, "tools[0].type"},
		{"bad tool schema", `{"model":"gpt-4.1-mini","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"string"}}]}`, 400, "tools[0].parameters"},
		{"bad tool_choice", `{"model":"gpt-4.1-mini","input":"x","tool_choice":"sometimes"}`, 400, "tool_choice"},
		{"tool_choice names no tool", `{"model":"gpt-4.1-mini","input":"x","tool_choice":{"type":"function","name":"f"}}`, 400, "tool_choice"},
		{"agent reference type", `{"agent_reference":{"type":"agent_id","name":"chat"},"input":"x"}`, 400, "agent_reference.type"},
		{"unknown agent", `{"agent_reference":{"type":"agent_reference","name":"nobody"},"input":"x"}`, 404, "agent_reference.name"},
		{"unknown agent version", `{"agent":{"type":"agent_reference","name":"chat","version":"9"},"input":"x"}`, 404, "agent_reference.name"},
		{"agent with other model", `{"agent":{"name":"chat"},"model":"other-deployment","input":"x"}`, 400, "model"},
		{"unknown conversation", `{"model":"gpt-4.1-mini","input":"x","conversation":{"id":"conv_nope"}}`, 404, "conversation"},
		{"store false in conversation", `{"model":"gpt-4.1-mini","input":"x","conversation":"conv_1","store":false}`, 400, "store"},
		{"background", `{"model":"gpt-4.1-mini","input":"x","background":true}`, 400, "background"},
		{"temperature", `{"model":"gpt-4.1-mini","input":"x","temperature":3}`, 400, "temperature"},
		{"bad item", `{"model":"gpt-4.1-mini","input":[{"type":"computer_call"}]}`, 400, "input[0].type"},
		{"too large", `{"model":"gpt-4.1-mini","input":"` + strings.Repeat("x", 5000) + `"}`, 413, ""},
		{"not JSON", `{"model":`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do(t, "POST", "/v1/responses", tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, body)
			}
			if got := deref(errorOf(t, body).Param); got != tt.param {
				t.Errorf("param = %q, want %q (%s)", got, tt.param, body)
			}
		})
	}
	if n := len(e.sim.calls()); n != 0 {
		t.Errorf("model called %d times for bad requests", n)
	}
}

func TestBackendFailures(t *testing.T) {
	tests := []struct {
		name   string
		do     CompleterFunc
		status int
		code   string
	}{
		{"completer error", func(context.Context, string, []byte) (*http.Response, error) {
			return nil, errors.New("dial tcp 10.0.0.1: secret detail")
		}, 502, "upstream_error"},
		{"rate limited", func(context.Context, string, []byte) (*http.Response, error) {
			return jsonResponse(429, `{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`), nil
		}, 429, "rate_limit_exceeded"},
		{"provider rejects", func(context.Context, string, []byte) (*http.Response, error) {
			return jsonResponse(400, `{"error":{"message":"context too long","type":"invalid_request_error","code":"context_length_exceeded"}}`), nil
		}, 400, "context_length_exceeded"},
		{"not a completion", func(context.Context, string, []byte) (*http.Response, error) {
			return jsonResponse(200, `{"hello":1}`), nil
		}, 502, "upstream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true, func(o *Options, _ *env) { o.Completer = tt.do })
			code, body := e.do(t, "POST", "/v1/responses", `{"model":"gpt-4.1-mini","input":"x"}`)
			ef := errorOf(t, body)
			if code != tt.status || deref(ef.Code) != tt.code {
				t.Fatalf("got %d %s, want %d %s", code, body, tt.status, tt.code)
			}
			if strings.Contains(string(body), "secret detail") {
				t.Errorf("internal detail leaked: %s", body)
			}
			if len(e.acks) != 0 {
				t.Errorf("a failed turn was written")
			}
		})
	}
}

func TestBrokenStreamFails(t *testing.T) {
	chunk := `data: {"choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}` + "\n\n"
	tests := []struct{ name, body string }{
		{"error event", chunk + `data: {"error":{"message":"backend died","code":"upstream_error"}}` + "\n\n"},
		{"cut", chunk},
		{"malformed", chunk + "data: {nope\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true, func(o *Options, _ *env) {
				o.Completer = CompleterFunc(func(context.Context, string, []byte) (*http.Response, error) {
					r := jsonResponse(200, tt.body)
					r.Header.Set("Content-Type", "text/event-stream")
					return r, nil
				})
			})
			evs := collect(t, e.client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: testDeployment, Input: textInput("x")}))
			last := evs[len(evs)-1]
			if last.Type != "response.failed" || last.Response.Error.Code != "server_error" || countType(evs, "response.completed") != 0 {
				t.Fatalf("last event %s", last.RawJSON())
			}
			if len(e.acks) != 0 {
				t.Error("a broken turn was stored")
			}
		})
	}
}

func jsonResponse(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: ioNopCloser(body)}
}

// TestRetryAcrossFailover: a turn acknowledged in one region is replayed,
// not run again, by the other region holding its replicated events, both
// as a standby and once promoted.
func TestRetryAcrossFailover(t *testing.T) {
	ctx := context.Background()
	east := newEnv(t, true)
	central := newEnv(t, false)
	body := `{"model":"gpt-4.1-mini","input":"hello across regions"}`
	code, first := east.do(t, "POST", "/v1/responses", body, "Idempotency-Key", "turn-7")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, first)
	}
	events, err := east.st.ReadEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := central.st.ApplyEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	var want struct{ ID string }
	json.Unmarshal(first, &want)
	for _, step := range []string{"standby", "promoted"} {
		if step == "promoted" {
			if err := central.st.Promote(ctx, 2); err != nil {
				t.Fatal(err)
			}
		}
		code, again := central.do(t, "POST", "/v1/responses", body, "Idempotency-Key", "turn-7")
		var got struct{ ID string }
		json.Unmarshal(again, &got)
		if code != http.StatusOK || got.ID != want.ID {
			t.Errorf("%s: %d %s, want response %s", step, code, again, want.ID)
		}
	}
	if n := len(central.sim.calls()); n != 0 {
		t.Errorf("the retry ran the model %d times in the other region", n)
	}
	if len(central.acks) != 1 {
		t.Errorf("promoted region acknowledged %d times before replaying, want 1", len(central.acks))
	}
}

func TestIncompleteAnswer(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := responses.ResponseNewParams{Model: testDeployment, Input: textInput("Tell me everything."), MaxOutputTokens: openai.Int(3)}
	plain, err := e.client.Responses.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	evs := collect(t, e.client.Responses.NewStreaming(ctx, p))
	last := evs[len(evs)-1]
	for _, r := range []responses.Response{*plain, last.Response} {
		if r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || r.Output[0].Status != "incomplete" ||
			len(strings.Fields(r.OutputText())) != 3 {
			t.Errorf("response %s", r.RawJSON())
		}
	}
	if last.Type != "response.incomplete" {
		t.Errorf("stream ended with %s", last.Type)
	}
}
