package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	cases := []change{
		&conversationCreate{ID: "conv_1", CreatedAt: at, Metadata: map[string]string{"a": "<b>"}},
		&conversationUpdate{ID: "conv_1", Metadata: map[string]string{}},
		&conversationDelete{ID: "conv_1"},
		&itemAdd{ConversationID: "conv_1", Seq: 3, ID: "msg_1", Type: ItemMessage, Role: "user", Data: json.RawMessage(`{"text":"a<b>&c"}`), CreatedAt: at},
		&itemDelete{ConversationID: "conv_1", ID: "msg_1"},
		&responsePut{ID: "resp_1", Status: "completed", Model: "m", Data: json.RawMessage(`{"usage":{"total_tokens":3}}`), CreatedAt: at, UpdatedAt: at},
		&responseDelete{ID: "resp_1", UpdatedAt: at},
		&agentApply{Name: "a", Version: "1", Hash: "h", Definition: json.RawMessage(`{}`), AppliedAt: at},
	}
	for _, c := range cases {
		t.Run(c.kind(), func(t *testing.T) {
			p, err := encodeChange(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeChange(Event{Seq: 1, Epoch: 1, Kind: c.kind(), Payload: p})
			if err != nil {
				t.Fatalf("decode %s: %v", p, err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, c)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct{ kind, payload string }{
		{"nope", `{}`},
		{KindConversationCreate, `{"id":"conv_1","created_at":"2026-01-01T00:00:00Z","metadata":{},"extra":1}`},
		{KindConversationCreate, `{"id":"resp_1","created_at":"2026-01-01T00:00:00Z"}`},
		{KindItemAdd, `{"conversation_id":"conv_1","seq":0,"id":"msg_1","type":"message","data":{}}`},
		{KindItemAdd, `{"conversation_id":"conv_1","seq":1,"id":"msg_1","type":"reasoning","data":{}}`},
		{KindItemAdd, `{"conversation_id":"conv_1","seq":1,"id":"msg_1","type":"message"}`},
		{KindResponsePut, `{"id":"resp_1","status":"","data":{}}`},
		{KindAgentApply, `{"name":"a","version":"","hash":"h","definition":{}}`},
		{KindConversationDelete, `{"id":"conv_1"} {"id":"conv_2"}`},
		{KindConversationDelete, `[`},
	}
	for _, tc := range cases {
		_, err := decodeChange(Event{Seq: 1, Epoch: 1, Kind: tc.kind, Payload: json.RawMessage(tc.payload)})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("decode %s %s: %v, want ErrInvalid", tc.kind, tc.payload, err)
		}
	}
}

// FuzzDecodeEvent: decoding never panics, and whatever decodes encodes to a
// payload that decodes to the same change.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(KindConversationCreate, []byte(`{"id":"conv_1","created_at":"2026-01-01T00:00:00Z","metadata":{"k":"v"}}`))
	f.Add(KindItemAdd, []byte(`{"conversation_id":"conv_1","seq":1,"id":"msg_1","type":"message","role":"user","data":{"a":[1,2]},"created_at":"2026-01-01T00:00:00.000001Z"}`))
	f.Add(KindResponsePut, []byte(`{"id":"resp_1","status":"completed","model":"m","data":{},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`))
	f.Add(KindAgentApply, []byte(`{"name":"a","version":"1","hash":"h","definition":{"x":"<y>"},"applied_at":"2026-01-01T00:00:00Z"}`))
	f.Add(KindItemDelete, []byte(`{"conversation_id":"conv_1","id":"msg_1"}`))
	f.Add(KindResponseDelete, []byte(`{"id":"resp_1"}`))
	f.Add("x", []byte(`null`))
	f.Fuzz(func(t *testing.T, kind string, payload []byte) {
		c, err := decodeChange(Event{Seq: 1, Epoch: 1, Kind: kind, Payload: payload})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		p, err := encodeChange(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := decodeChange(Event{Seq: 1, Epoch: 1, Kind: kind, Payload: p})
		if err != nil {
			t.Fatalf("re-decode %s: %v", p, err)
		}
		p2, _ := encodeChange(c2)
		if string(p) != string(p2) {
			t.Fatalf("encoding not stable:\n%s\n%s", p, p2)
		}
	})
}
