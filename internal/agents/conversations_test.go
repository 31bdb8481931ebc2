package agents

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

func userItem(text string) responses.ResponseInputItemUnionParam {
	return responses.ResponseInputItemParamOfMessage(text, responses.EasyInputMessageRoleUser)
}

func TestConversationItemsAndPagination(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	conv, err := e.client.Conversations.New(ctx, conversations.ConversationNewParams{
		Items:    []responses.ResponseInputItemUnionParam{userItem("one"), userItem("two")},
		Metadata: shared.Metadata{"topic": "pagination"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(conv.ID, "conv_") || conv.Metadata.(map[string]any)["topic"] != "pagination" {
		t.Fatalf("conversation = %+v", conv)
	}
	added, err := e.client.Conversations.Items.New(ctx, conv.ID, conversations.ItemNewParams{
		Items: []responses.ResponseInputItemUnionParam{
			userItem("three"),
			responses.ResponseInputItemParamOfMessage("four", responses.EasyInputMessageRoleAssistant),
			userItem("five"),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(added.Data) != 3 || added.FirstID != added.Data[0].ID || added.LastID != added.Data[2].ID {
		t.Fatalf("added = %s", added.RawJSON())
	}
	if got := added.Data[1]; got.Role != "assistant" || got.AsMessage().Content[0].Type != "output_text" || got.AsMessage().Content[0].Text != "four" {
		t.Errorf("assistant item = %s", got.RawJSON())
	}

	for _, order := range []string{"asc", "desc"} {
		t.Run(order, func(t *testing.T) {
			var texts []string
			pages := 0
			page, err := e.client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{
				Limit: openai.Int(2), Order: conversations.ItemListParamsOrder(order)})
			for ; err == nil && page != nil; page, err = page.GetNextPage() {
				pages++
				for _, it := range page.Data {
					texts = append(texts, it.AsMessage().Content[0].Text)
				}
				if page.HasMore != (len(texts) < 5) {
					t.Errorf("page %d has_more = %v with %d items seen", pages, page.HasMore, len(texts))
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"one", "two", "three", "four", "five"}
			if order == "desc" {
				want = []string{"five", "four", "three", "two", "one"}
			}
			if fmt.Sprint(texts) != fmt.Sprint(want) || pages != 3 {
				t.Errorf("items %v in %d pages, want %v in 3", texts, pages, want)
			}
		})
	}

	// Get and delete one item; update metadata; delete the conversation.
	one, err := e.client.Conversations.Items.Get(ctx, conv.ID, added.Data[0].ID, conversations.ItemGetParams{})
	if err != nil || one.AsMessage().Content[0].Text != "three" {
		t.Fatalf("get item = %v, %v", one, err)
	}
	if _, err := e.client.Conversations.Items.Delete(ctx, conv.ID, added.Data[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Conversations.Items.Get(ctx, conv.ID, added.Data[0].ID, conversations.ItemGetParams{})
	apiErr(t, err, http.StatusNotFound, "not_found")
	page, err := e.client.Conversations.Items.List(ctx, conv.ID, conversations.ItemListParams{})
	if err != nil || len(page.Data) != 4 {
		t.Fatalf("after delete: %d items, %v", len(page.Data), err)
	}
	upd, err := e.client.Conversations.Update(ctx, conv.ID, conversations.ConversationUpdateParams{Metadata: shared.Metadata{"topic": "done"}})
	if err != nil || upd.Metadata.(map[string]any)["topic"] != "done" {
		t.Fatalf("update = %v, %v", upd, err)
	}
	got, err := e.client.Conversations.Get(ctx, conv.ID)
	if err != nil || got.Metadata.(map[string]any)["topic"] != "done" {
		t.Fatalf("get = %v, %v", got, err)
	}
	del, err := e.client.Conversations.Delete(ctx, conv.ID)
	if err != nil || !del.Deleted || del.ID != conv.ID {
		t.Fatalf("delete = %v, %v", del, err)
	}
	_, err = e.client.Conversations.Get(ctx, conv.ID)
	apiErr(t, err, http.StatusNotFound, "not_found")
}

func TestConversationErrors(t *testing.T) {
	e := newEnv(t, true)
	many := make([]string, 21)
	for i := range many {
		many[i] = `{"role":"user","content":"x"}`
	}
	md := make([]string, 17)
	for i := range md {
		md[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	conv, err := e.client.Conversations.New(context.Background(), conversations.ConversationNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		param                    string
	}{
		{"21 items at create", "POST", "/v1/conversations", `{"items":[` + strings.Join(many, ",") + `]}`, 400, "items"},
		{"17 metadata pairs", "POST", "/v1/conversations", `{"metadata":{` + strings.Join(md, ",") + `}}`, 400, "metadata"},
		{"long metadata value", "POST", "/v1/conversations", `{"metadata":{"k":"` + strings.Repeat("v", 513) + `"}}`, 400, "metadata.k"},
		{"bad role", "POST", "/v1/conversations", `{"items":[{"role":"robot","content":"x"}]}`, 400, "items[0].role"},
		{"bad part", "POST", "/v1/conversations/" + conv.ID + "/items", `{"items":[{"role":"user","content":[{"type":"input_audio"}]}]}`, 400, "items[0].content[0].type"},
		{"21 items appended", "POST", "/v1/conversations/" + conv.ID + "/items", `{"items":[` + strings.Join(many, ",") + `]}`, 400, "items"},
		{"no items", "POST", "/v1/conversations/" + conv.ID + "/items", `{}`, 400, "items"},
		{"output without call id", "POST", "/v1/conversations/" + conv.ID + "/items", `{"items":[{"type":"function_call_output","output":"x"}]}`, 400, "items[0].call_id"},
		{"bad limit", "GET", "/v1/conversations/" + conv.ID + "/items?limit=101", ``, 400, "limit"},
		{"bad order", "GET", "/v1/conversations/" + conv.ID + "/items?order=up", ``, 400, "order"},
		{"unknown after", "GET", "/v1/conversations/" + conv.ID + "/items?after=msg_nope", ``, 400, ""},
		{"unknown conversation", "GET", "/v1/conversations/conv_nope", ``, 404, ""},
		{"items of unknown conversation", "POST", "/v1/conversations/conv_nope/items", `{"items":[{"role":"user","content":"x"}]}`, 404, ""},
		{"not JSON", "POST", "/v1/conversations", `{`, 400, ""},
		{"unknown route", "GET", "/v1/nothing", ``, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do(t, tt.method, tt.path, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, body)
			}
			if got := deref(errorOf(t, body).Param); got != tt.param {
				t.Errorf("param = %q, want %q (%s)", got, tt.param, body)
			}
		})
	}
	if n := len(e.acks); n != 1 { // only the conversation create wrote
		t.Errorf("AfterWrite called %d times, want 1", n)
	}
}
