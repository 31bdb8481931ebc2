package agents

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/understudy/understudy/internal/store"
)

// streamEvent is one Responses stream event; fields not used by an event
// type are omitted.
type streamEvent struct {
	Type           string          `json:"type"`
	SequenceNumber int64           `json:"sequence_number"`
	Response       *responseObject `json:"response,omitempty"`
	OutputIndex    *int            `json:"output_index,omitempty"`
	Item           *apiItem        `json:"item,omitempty"`
	ItemID         string          `json:"item_id,omitempty"`
	ContentIndex   *int            `json:"content_index,omitempty"`
	Part           *contentPart    `json:"part,omitempty"`
	Delta          *string         `json:"delta,omitempty"`
	Text           *string         `json:"text,omitempty"`
	Refusal        *string         `json:"refusal,omitempty"`
	Name           string          `json:"name,omitempty"`
	Arguments      *string         `json:"arguments,omitempty"`
	Logprobs       *[]any          `json:"logprobs,omitempty"`
}

// errorEvent is the stream's "error" event.
type errorEvent struct {
	Type           string  `json:"type"`
	SequenceNumber int64   `json:"sequence_number"`
	Code           string  `json:"code"`
	Message        string  `json:"message"`
	Param          *string `json:"param"`
}

func intp(i int) *int           { return &i }
func strp(s string) *string     { return &s }
func emptyLogprobs() *[]any     { l := []any{}; return &l }
func itemp(it apiItem) *apiItem { return &it }

// eventWriter writes server-sent events with consecutive sequence numbers
// from 0, flushing each. After a write error it writes nothing more.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	seq int64
	err error
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &eventWriter{w: w, rc: http.NewResponseController(w)}
}

func (e *eventWriter) send(ev streamEvent) {
	ev.SequenceNumber = e.seq
	e.write(ev.Type, ev)
}

func (e *eventWriter) sendError(code, msg string) {
	e.write("error", errorEvent{Type: "error", SequenceNumber: e.seq, Code: code, Message: msg})
}

func (e *eventWriter) write(typ string, v any) {
	e.seq++
	if e.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		e.err = err
		return
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", typ, b); err != nil {
		e.err = err
		return
	}
	e.err = e.rc.Flush()
}

// outputStream turns output items into Responses events as they grow.
// One item is open at a time; opening the next closes it.
type outputStream struct {
	ev    *eventWriter
	items []apiItem
	open  int // index of the open item, -1 when none
	// the open message's text and refusal part indexes, -1 when none
	textPart, refusalPart int
	// chat tool_call index → item index, for streamed calls
	calls map[int]int
}

func newOutputStream(ev *eventWriter) *outputStream {
	return &outputStream{ev: ev, open: -1, textPart: -1, refusalPart: -1, calls: map[int]int{}}
}

// openItem closes the open item and announces it (in progress).
func (o *outputStream) openItem(it apiItem) {
	o.close()
	o.items = append(o.items, it)
	o.open = len(o.items) - 1
	added := it
	added.Status = "in_progress"
	if added.Type == store.ItemMessage {
		added.Content = []contentPart{}
	} else {
		added.Arguments = ""
	}
	o.ev.send(streamEvent{Type: "response.output_item.added", OutputIndex: intp(o.open), Item: &added})
}

// message returns the open message item, opening one with id if needed.
func (o *outputStream) message(id string) *apiItem {
	if o.open < 0 || o.items[o.open].Type != store.ItemMessage {
		o.openItem(apiItem{Type: store.ItemMessage, ID: id, Status: "completed", Role: "assistant"})
	}
	return &o.items[o.open]
}

// text appends a text delta to the open message.
func (o *outputStream) text(id, delta string) {
	m := o.message(id)
	if o.textPart < 0 {
		m.Content = append(m.Content, contentPart{Type: partOutputText})
		o.textPart = len(m.Content) - 1
		o.ev.send(streamEvent{Type: "response.content_part.added", ItemID: m.ID, OutputIndex: intp(o.open),
			ContentIndex: intp(o.textPart), Part: &contentPart{Type: partOutputText}})
	}
	m.Content[o.textPart].Text += delta
	o.ev.send(streamEvent{Type: "response.output_text.delta", ItemID: m.ID, OutputIndex: intp(o.open),
		ContentIndex: intp(o.textPart), Delta: strp(delta), Logprobs: emptyLogprobs()})
}

// refusal appends a refusal delta to the open message.
func (o *outputStream) refusal(id, delta string) {
	m := o.message(id)
	if o.refusalPart < 0 {
		m.Content = append(m.Content, contentPart{Type: partRefusal})
		o.refusalPart = len(m.Content) - 1
		o.ev.send(streamEvent{Type: "response.content_part.added", ItemID: m.ID, OutputIndex: intp(o.open),
			ContentIndex: intp(o.refusalPart), Part: &contentPart{Type: partRefusal}})
	}
	m.Content[o.refusalPart].Text += delta
	o.ev.send(streamEvent{Type: "response.refusal.delta", ItemID: m.ID, OutputIndex: intp(o.open),
		ContentIndex: intp(o.refusalPart), Delta: strp(delta)})
}

// call opens a function_call item.
func (o *outputStream) call(id, callID, name string) {
	o.openItem(callItem(id, callID, name, ""))
}

// arguments appends to the open function call's arguments.
func (o *outputStream) arguments(delta string) {
	it := &o.items[o.open]
	it.Arguments += delta
	o.ev.send(streamEvent{Type: "response.function_call_arguments.delta", ItemID: it.ID, OutputIndex: intp(o.open), Delta: strp(delta)})
}

// close finishes the open item: the done events of its parts, then
// output_item.done.
func (o *outputStream) close() {
	if o.open < 0 {
		return
	}
	it := &o.items[o.open]
	idx := o.open
	switch it.Type {
	case store.ItemMessage:
		for i, p := range it.Content {
			if p.Type == partRefusal {
				o.ev.send(streamEvent{Type: "response.refusal.done", ItemID: it.ID, OutputIndex: intp(idx), ContentIndex: intp(i), Refusal: strp(p.Text)})
			} else {
				o.ev.send(streamEvent{Type: "response.output_text.done", ItemID: it.ID, OutputIndex: intp(idx), ContentIndex: intp(i), Text: strp(p.Text), Logprobs: emptyLogprobs()})
			}
			part := p
			o.ev.send(streamEvent{Type: "response.content_part.done", ItemID: it.ID, OutputIndex: intp(idx), ContentIndex: intp(i), Part: &part})
		}
	case store.ItemFunctionCall:
		o.ev.send(streamEvent{Type: "response.function_call_arguments.done", ItemID: it.ID, OutputIndex: intp(idx), Name: it.Name, Arguments: strp(it.Arguments)})
	}
	o.ev.send(streamEvent{Type: "response.output_item.done", OutputIndex: intp(idx), Item: itemp(*it)})
	o.open, o.textPart, o.refusalPart = -1, -1, -1
}

// chatChunk is the part of a chat completion chunk the runtime reads.
type chatChunk struct {
	Choices []struct {
		Delta struct {
			Content   *string        `json:"content"`
			Refusal   *string        `json:"refusal"`
			ToolCalls []chatToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage       `json:"usage"`
	Error *json.RawMessage `json:"error"`
}

var errStreamBroken = errors.New("the model stream broke")

// translate reads a chat completions SSE stream and emits the output
// events; it returns the result once the backend's stream ends.
func (o *outputStream) translate(body io.Reader) (modelResult, error) {
	var res modelResult
	br := bufio.NewReaderSize(body, 64<<10)
	sawFinish := false
	msgID := ""
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSpace(line)
			data, ok := bytes.CutPrefix(line, []byte("data:"))
			if ok {
				data = bytes.TrimSpace(data)
				if string(data) == "[DONE]" {
					break
				}
				var c chatChunk
				if err := json.Unmarshal(data, &c); err != nil {
					return res, fmt.Errorf("%w: a malformed event", errStreamBroken)
				}
				if c.Error != nil {
					return res, fmt.Errorf("%w: the backend ended the stream with an error", errStreamBroken)
				}
				if c.Usage != nil {
					res.usage = c.Usage.responses()
				}
				for _, ch := range c.Choices[:min(1, len(c.Choices))] {
					d := ch.Delta
					if d.Content != nil && *d.Content != "" {
						if msgID == "" || o.open < 0 || o.items[o.open].ID != msgID {
							msgID = store.NewID(store.PrefixMessage)
						}
						o.text(msgID, *d.Content)
					}
					if d.Refusal != nil && *d.Refusal != "" {
						if msgID == "" || o.open < 0 || o.items[o.open].ID != msgID {
							msgID = store.NewID(store.PrefixMessage)
						}
						o.refusal(msgID, *d.Refusal)
					}
					for _, tc := range d.ToolCalls {
						idx := 0
						if tc.Index != nil {
							idx = *tc.Index
						}
						i, seen := o.calls[idx]
						switch {
						case !seen:
							o.call(store.NewID(store.PrefixFunctionCall), tc.ID, tc.Function.Name)
							o.calls[idx] = o.open
						case i != o.open:
							return res, fmt.Errorf("%w: tool call %d continued after the next began", errStreamBroken, idx)
						}
						if tc.Function.Arguments != "" {
							o.arguments(tc.Function.Arguments)
						}
					}
					if ch.FinishReason != nil && *ch.FinishReason != "" {
						res.finish, sawFinish = *ch.FinishReason, true
					}
				}
			}
		}
		if err == io.EOF {
			if !sawFinish {
				return res, fmt.Errorf("%w: it ended before the answer was complete", errStreamBroken)
			}
			break
		}
		if err != nil {
			return res, fmt.Errorf("%w: %v", errStreamBroken, err)
		}
	}
	if len(o.items) == 0 {
		o.text(store.NewID(store.PrefixMessage), "") // an empty answer is an empty message, as unstreamed
	}
	if cutShort(res.finish) && o.open >= 0 && o.items[o.open].Type == store.ItemMessage {
		o.items[o.open].Status = "incomplete"
	}
	o.close()
	res.output = o.items
	return res, nil
}

// streamTurn runs a turn as a stream. The model is called first, so a
// backend that refuses is answered with an HTTP error; once events flow,
// the turn is stored (and AfterWrite acknowledged) before
// response.completed is sent. If storing fails the client gets an error
// event and response.failed instead: never completed for a turn that is
// not acknowledged.
func (s *Service) streamTurn(w http.ResponseWriter, r *http.Request, t *turn) error {
	ctx := r.Context()
	resp, err := s.llm.Do(ctx, t.deployment, t.chatBody)
	if err != nil {
		return completerError(t.deployment, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return backendError(t.deployment, resp.StatusCode, body)
	}
	ev := newEventWriter(w)
	start := t.response("in_progress", nil, s.now())
	ev.send(streamEvent{Type: "response.created", Response: start.public()})
	ev.send(streamEvent{Type: "response.in_progress", Response: start.public()})

	out := newOutputStream(ev)
	res, err := out.translate(resp.Body)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "model stream failed", slog.String("response_id", t.id),
			slog.String("deployment", t.deployment), slog.String("error", err.Error()))
		out.close()
		failed := t.response("failed", &modelResult{output: out.items}, s.now())
		failed.Status, failed.IncompleteDetails = "failed", nil
		failed.Error = &responseError{Code: "server_error", Message: fmt.Sprintf("deployment %s: %v; nothing was stored, retry the turn", t.deployment, err)}
		ev.send(streamEvent{Type: "response.failed", Response: failed.public()})
		return errAnswered
	}
	final := t.response("completed", &res, s.now())
	if t.req.Store {
		stored, err := s.commit(ctx, t, final)
		if err != nil {
			e := toAPIError(err)
			if e.Status >= 500 {
				s.log.LogAttrs(ctx, slog.LevelWarn, "stream turn not stored", slog.String("response_id", t.id), slog.String("error", err.Error()))
			}
			ev.sendError(e.Code, e.Message)
			failed := *final
			failed.Status, failed.IncompleteDetails = "failed", nil
			failed.Error = &responseError{Code: e.Code, Message: e.Message}
			ev.send(streamEvent{Type: "response.failed", Response: failed.public()})
			return errAnswered
		}
		final = stored
	}
	ev.send(streamEvent{Type: terminalEvent(final), Response: final.public()})
	return nil
}

func terminalEvent(o *responseObject) string {
	if o.Status == "incomplete" {
		return "response.incomplete"
	}
	return "response.completed"
}

// replayStream answers a stored response as the events a live stream of
// it would have sent (one delta per part).
func replayStream(w http.ResponseWriter, obj *responseObject) error {
	ev := newEventWriter(w)
	start := *obj
	start.Status, start.Output, start.Usage, start.CompletedAt, start.IncompleteDetails = "in_progress", []apiItem{}, nil, nil, nil
	ev.send(streamEvent{Type: "response.created", Response: start.public()})
	ev.send(streamEvent{Type: "response.in_progress", Response: start.public()})
	out := newOutputStream(ev)
	for _, it := range obj.Output {
		switch it.Type {
		case store.ItemFunctionCall:
			out.call(it.ID, it.CallID, it.Name)
			out.arguments(it.Arguments)
		default:
			out.message(it.ID)
			for _, p := range it.Content {
				if p.Type == partRefusal {
					out.refusal(it.ID, p.Text)
				} else {
					out.text(it.ID, p.Text)
				}
			}
		}
	}
	out.close()
	ev.send(streamEvent{Type: terminalEvent(obj), Response: obj.public()})
	return nil
}
