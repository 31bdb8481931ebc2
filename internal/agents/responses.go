package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/understudy/understudy/internal/store"
)

// responseObject is a response in the API shape. The stored copy
// (store.Response.Data) also carries the turn's input in StoredInput.
type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	CompletedAt        *int64            `json:"completed_at"`
	Error              *responseError    `json:"error"`
	IncompleteDetails  *incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []apiItem         `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Conversation       *conversationRef  `json:"conversation"`
	AgentReference     *AgentRef         `json:"agent_reference,omitempty"`
	Temperature        float64           `json:"temperature"`
	TopP               float64           `json:"top_p"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              []Tool            `json:"tools"`
	Store              bool              `json:"store"`
	Background         bool              `json:"background"`
	Text               json.RawMessage   `json:"text"`
	Truncation         string            `json:"truncation"`
	Usage              *usage            `json:"usage"`
	User               *string           `json:"user"`
	Metadata           map[string]string `json:"metadata"`
	// StoredInput is the turn's input items, kept in the stored copy for
	// input_items and previous_response_id chains; never answered.
	StoredInput []apiItem `json:"understudy_input,omitempty"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type conversationRef struct {
	ID string `json:"id"`
}

// public is the copy answered to clients.
func (o *responseObject) public() *responseObject {
	c := *o
	c.StoredInput = nil
	return &c
}

// turn is one prepared Responses turn.
type turn struct {
	req          *responseRequest
	id           string
	createdAt    time.Time
	deployment   string
	agent        *AgentRef // version resolved
	instructions string
	tools        []Tool
	history      []apiItem
	chatBody     []byte
	scope, key   string // idempotency
}

// response builds the response object of t with status and output.
func (t *turn) response(status string, res *modelResult, now time.Time) *responseObject {
	o := &responseObject{
		ID: t.id, Object: "response", CreatedAt: t.createdAt.Unix(), Status: status,
		Model: t.deployment, Output: []apiItem{}, ParallelToolCalls: true,
		AgentReference: t.agent, Temperature: 1, TopP: 1, ToolChoice: json.RawMessage(`"auto"`),
		Tools: t.tools, Store: t.req.Store, Text: json.RawMessage(`{"format":{"type":"text"}}`),
		Truncation: "disabled", Metadata: t.req.Metadata, MaxOutputTokens: t.req.MaxOutputTokens,
	}
	if o.Tools == nil {
		o.Tools = []Tool{}
	}
	if o.Metadata == nil {
		o.Metadata = map[string]string{}
	}
	if t.instructions != "" {
		o.Instructions = &t.instructions
	}
	if t.req.PreviousResponseID != "" {
		o.PreviousResponseID = &t.req.PreviousResponseID
	}
	if t.req.Conversation != "" {
		o.Conversation = &conversationRef{ID: t.req.Conversation}
	}
	if t.req.ParallelToolCalls != nil {
		o.ParallelToolCalls = *t.req.ParallelToolCalls
	}
	if t.req.Temperature != nil {
		o.Temperature = *t.req.Temperature
	}
	if t.req.TopP != nil {
		o.TopP = *t.req.TopP
	}
	if t.req.ToolChoice != nil {
		o.ToolChoice = t.req.ToolChoice
	}
	if t.req.User != "" {
		o.User = &t.req.User
	}
	if res != nil {
		o.Output = res.output
		if o.Output == nil {
			o.Output = []apiItem{}
		}
		o.Usage = res.usage
		switch res.finish {
		case "length":
			o.Status, o.IncompleteDetails = "incomplete", &incomplete{Reason: "max_output_tokens"}
		case "content_filter":
			o.Status, o.IncompleteDetails = "incomplete", &incomplete{Reason: "content_filter"}
		}
		done := now.Unix()
		o.CompletedAt = &done
	}
	return o
}

func (s *Service) createResponse(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	// A turn (a stream above all) outlives the server's write timeout; the
	// deployment's timeouts and the client's context bound it instead.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	req, err := decodeResponseRequest(body)
	if err != nil {
		return err
	}
	var scope, key string
	if key = r.Header.Get("Idempotency-Key"); key != "" {
		if !req.Store {
			return badRequest("store", "an Idempotency-Key needs a stored response: store cannot be false")
		}
		if len(key) > 255 {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: "the Idempotency-Key header is longer than 255 bytes"}
		}
		scope = s.keyScope(ctx)
		// Concurrent duplicates queue here, so only one runs the model;
		// the others then find its stored response.
		unlock, err := s.keys.lock(ctx, scope+"\x00"+key)
		if err != nil {
			return err
		}
		defer unlock()
		prev, err := s.st.ResponseByKey(ctx, scope, key)
		switch {
		case err == nil:
			return s.replay(w, r, req, prev)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if req.Store {
		// Refuse before running the model, not after.
		if err := s.checkPrimary(ctx); err != nil {
			return err
		}
	}
	t, err := s.prepare(ctx, req)
	if err != nil {
		return err
	}
	t.scope, t.key = scope, key
	if req.Stream {
		return s.streamTurn(w, r, t)
	}
	res, err := s.complete(ctx, t)
	if err != nil {
		return err
	}
	obj := t.response("completed", &res, s.now())
	if req.Store {
		if obj, err = s.commit(ctx, t, obj); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, obj.public())
}

// checkPrimary refuses writes on a store that is not primary, naming the
// primary it knows.
func (s *Service) checkPrimary(ctx context.Context) error {
	m, err := s.st.Meta(ctx)
	if err != nil {
		return err
	}
	if m.Role != store.RolePrimary {
		return notPrimary(m.Role, m.Epoch, m.KnownPrimary, m.KnownEpoch)
	}
	return nil
}

// replay answers a repeated turn with the response stored under its
// Idempotency-Key, after making sure that write is acknowledged.
func (s *Service) replay(w http.ResponseWriter, r *http.Request, req *responseRequest, prev store.Response) error {
	ctx := r.Context()
	switch {
	case prev.Deleted:
		return &apiError{Status: http.StatusConflict, Code: "idempotency_key_reused", Param: "Idempotency-Key",
			Message: fmt.Sprintf("this Idempotency-Key belongs to response %s, which was deleted", prev.ID)}
	case prev.RequestHash != req.Hash:
		return &apiError{Status: http.StatusConflict, Code: "idempotency_key_reused", Param: "Idempotency-Key",
			Message: fmt.Sprintf("this Idempotency-Key was used for response %s with a different request body", prev.ID)}
	}
	m, err := s.st.Meta(ctx)
	if err != nil {
		return err
	}
	// The first attempt may have failed in AfterWrite: acknowledge
	// everything held before answering. A standby holds it because it was
	// replicated, so it answers as is.
	if m.Role == store.RolePrimary {
		if err := s.acknowledge(ctx, m.Position); err != nil {
			return err
		}
	}
	obj, err := decodeStored(prev.Data)
	if err != nil {
		return err
	}
	w.Header().Set("Idempotent-Replayed", "true")
	if req.Stream {
		return replayStream(w, obj)
	}
	return writeJSON(w, http.StatusOK, obj.public())
}

func decodeStored(data []byte) (*responseObject, error) {
	var o responseObject
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("decode stored response: %w", err)
	}
	return &o, nil
}

// prepare resolves the agent and deployment, loads the prior items and
// builds the chat request.
func (s *Service) prepare(ctx context.Context, req *responseRequest) (*turn, error) {
	t := &turn{req: req, id: store.NewID(store.PrefixResponse), createdAt: s.now(), deployment: req.Model}
	var agentInstructions string
	var agentTools []Tool
	if req.Agent != nil {
		av, err := s.st.AgentVersion(ctx, req.Agent.Name, req.Agent.Version)
		if errors.Is(err, store.ErrNotFound) {
			what := "agent " + req.Agent.Name
			if req.Agent.Version != "" {
				what += " version " + req.Agent.Version
			}
			return nil, &apiError{Status: http.StatusNotFound, Code: "agent_not_found", Param: "agent_reference.name",
				Message: what + " is not applied in this region (understudy agents apply)"}
		}
		if err != nil {
			return nil, err
		}
		var def Definition
		if err := json.Unmarshal(av.Definition, &def); err != nil {
			return nil, fmt.Errorf("decode agent %s version %s: %w", av.Name, av.Version, err)
		}
		if req.Model != "" && req.Model != def.Model {
			return nil, badRequest("model", "agent %s uses deployment %s; omit model or send %s", def.Name, def.Model, def.Model)
		}
		t.deployment = def.Model
		t.agent = &AgentRef{Type: "agent_reference", Name: av.Name, Version: av.Version}
		agentInstructions, agentTools = def.Instructions, def.Tools
	}
	if len(s.deps) > 0 && !s.deps[t.deployment] {
		return nil, badRequest("model", "unknown deployment %q (this region serves %s)", t.deployment, strings.Join(s.depList, ", "))
	}
	t.instructions = joinNonEmpty("\n\n", agentInstructions, req.Instructions)
	t.tools = mergeTools(agentTools, req.Tools)
	if req.ToolChoice != nil && req.ToolChoice[0] == '{' {
		var named struct {
			Name string `json:"name"`
		}
		json.Unmarshal(req.ToolChoice, &named)
		if !slices.ContainsFunc(t.tools, func(tl Tool) bool { return tl.Name == named.Name }) {
			return nil, badRequest("tool_choice", "tool_choice names %q, which is not among the tools", named.Name)
		}
	}

	var err error
	switch {
	case req.Conversation != "":
		items, e := s.st.Items(ctx, req.Conversation)
		if errors.Is(e, store.ErrNotFound) {
			return nil, &apiError{Status: http.StatusNotFound, Code: "not_found", Param: "conversation", Message: "no conversation " + req.Conversation}
		}
		if e != nil {
			return nil, e
		}
		t.history, err = decodeStoreItems(items)
	case req.PreviousResponseID != "":
		t.history, err = s.chain(ctx, req.PreviousResponseID)
	}
	if err != nil {
		return nil, err
	}
	if err := checkCallOutputs(t.history, req.Input); err != nil {
		return nil, err
	}

	cr := chatRequest{
		Model:       t.deployment,
		Messages:    chatMessages(t.instructions, append(slices.Clip(t.history), req.Input...)),
		Temperature: req.Temperature, TopP: req.TopP, MaxCompletionTokens: req.MaxOutputTokens,
		User: req.User, Stream: req.Stream,
	}
	if len(t.tools) > 0 {
		cr.Tools = chatTools(t.tools)
		cr.ToolChoice = chatToolChoice(req.ToolChoice)
		cr.ParallelToolCalls = req.ParallelToolCalls
	}
	if req.Stream {
		cr.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if t.chatBody, err = json.Marshal(cr); err != nil {
		return nil, fmt.Errorf("encode chat request: %w", err)
	}
	return t, nil
}

func joinNonEmpty(sep string, ss ...string) string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, sep)
}

// mergeTools is the agent's tools followed by the request's; a request
// tool replaces an agent tool of the same name.
func mergeTools(agent, req []Tool) []Tool {
	out := make([]Tool, 0, len(agent)+len(req))
	for _, t := range agent {
		if !slices.ContainsFunc(req, func(r Tool) bool { return r.Name == t.Name }) {
			out = append(out, t)
		}
	}
	return append(out, req...)
}

func decodeStoreItems(items []store.Item) ([]apiItem, error) {
	out := make([]apiItem, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Data, &out[i]); err != nil {
			return nil, fmt.Errorf("decode stored item %s: %w", it.ID, err)
		}
	}
	return out, nil
}

// chain loads the items a previous_response_id continues: each response's
// input and output, oldest first. A response made in a conversation
// continues from the conversation's items up to its own last item.
func (s *Service) chain(ctx context.Context, id string) ([]apiItem, error) {
	var segments [][]apiItem
	for n := 0; id != ""; n++ {
		if n >= s.maxChain {
			return nil, badRequest("previous_response_id", "the previous_response_id chain is longer than %d responses", s.maxChain)
		}
		r, err := s.st.Response(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			msg := "no stored response " + id
			if n > 0 {
				msg = "response " + id + ", earlier in the previous_response_id chain, is not stored"
			}
			return nil, &apiError{Status: http.StatusNotFound, Code: "not_found", Param: "previous_response_id", Message: msg}
		}
		if err != nil {
			return nil, err
		}
		obj, err := decodeStored(r.Data)
		if err != nil {
			return nil, err
		}
		if r.ConversationID != "" {
			prefix, ok, err := s.conversationPrefix(ctx, r.ConversationID, obj)
			if err != nil {
				return nil, err
			}
			if ok {
				segments = append(segments, prefix)
				break
			}
		}
		segments = append(segments, append(slices.Clip(obj.StoredInput), obj.Output...))
		id = ""
		if obj.PreviousResponseID != nil {
			id = *obj.PreviousResponseID
		}
	}
	var out []apiItem
	for i := len(segments) - 1; i >= 0; i-- {
		out = append(out, segments[i]...)
	}
	return out, nil
}

// conversationPrefix is the conversation's items up to the last item of
// obj (its last output, or input); ok is false when that item is gone.
func (s *Service) conversationPrefix(ctx context.Context, convID string, obj *responseObject) ([]apiItem, bool, error) {
	items, err := s.st.Items(ctx, convID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var last string
	switch {
	case len(obj.Output) > 0:
		last = obj.Output[len(obj.Output)-1].ID
	case len(obj.StoredInput) > 0:
		last = obj.StoredInput[len(obj.StoredInput)-1].ID
	}
	i := slices.IndexFunc(items, func(it store.Item) bool { return it.ID == last })
	if i < 0 {
		return nil, false, nil
	}
	prefix, err := decodeStoreItems(items[:i+1])
	return prefix, err == nil, err
}

// complete runs a non-streaming completion.
func (s *Service) complete(ctx context.Context, t *turn) (modelResult, error) {
	resp, err := s.llm.Do(ctx, t.deployment, t.chatBody)
	if err != nil {
		return modelResult{}, completerError(t.deployment, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			return modelResult{}, ctx.Err()
		}
		return modelResult{}, &apiError{Status: http.StatusBadGateway, Code: "upstream_error", Message: fmt.Sprintf("deployment %s: the answer was cut", t.deployment)}
	}
	if resp.StatusCode/100 != 2 {
		return modelResult{}, backendError(t.deployment, resp.StatusCode, body)
	}
	res, err := parseCompletion(body)
	if err != nil {
		return modelResult{}, &apiError{Status: http.StatusBadGateway, Code: "upstream_error", Message: fmt.Sprintf("deployment %s: %v", t.deployment, err)}
	}
	return res, nil
}

// commit stores a finished turn in one write: the response (with its
// idempotency key) and, in a conversation, the input and output items;
// then waits for AfterWrite. If the key was already used (a duplicate that
// ran elsewhere), nothing is written and the stored response is returned.
func (s *Service) commit(ctx context.Context, t *turn, obj *responseObject) (*responseObject, error) {
	stored := *obj
	stored.StoredInput = t.req.Input
	data, err := json.Marshal(&stored)
	if err != nil {
		return nil, fmt.Errorf("encode response %s: %w", obj.ID, err)
	}
	epoch, err := s.writeEpoch(ctx)
	if err != nil {
		return nil, err
	}
	var existing *store.Response
	pos, err := s.st.Update(ctx, epoch, func(tx *store.Tx) error {
		r, dup, err := tx.CreateResponse(store.Response{
			ID: obj.ID, Status: obj.Status, Model: obj.Model,
			ConversationID: t.req.Conversation, PreviousResponseID: t.req.PreviousResponseID,
			Data: data, KeyScope: t.scope, IdempotencyKey: t.key, RequestHash: t.req.Hash,
			CreatedAt: t.createdAt,
		})
		if err != nil {
			return err
		}
		if dup {
			existing = &r
			return nil
		}
		if t.req.Conversation == "" {
			return nil
		}
		return appendItems(tx, t.req.Conversation, append(slices.Clip(t.req.Input), obj.Output...))
	})
	if err != nil {
		return nil, fmt.Errorf("store response %s: %w", obj.ID, err)
	}
	if err := s.acknowledge(ctx, pos); err != nil {
		return nil, err
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "turn stored", slog.String("response_id", obj.ID),
		slog.String("conversation_id", t.req.Conversation), slog.String("deployment", t.deployment),
		slog.Int64("epoch", epoch), slog.Int64("seq", pos.Seq))
	if existing != nil {
		return decodeStored(existing.Data)
	}
	return obj, nil
}

func (s *Service) getResponse(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("stream") == "true" {
		return badRequest("stream", "resuming a stream is not supported; GET the response without stream")
	}
	resp, err := s.st.Response(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	obj, err := decodeStored(resp.Data)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, obj.public())
}

func (s *Service) deleteResponse(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.update(r.Context(), func(tx *store.Tx) error { return tx.DeleteResponse(id) }); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "response.deleted", "deleted": true})
}

func (s *Service) listInputItems(w http.ResponseWriter, r *http.Request) error {
	opts, err := listParams(r)
	if err != nil {
		return err
	}
	resp, err := s.st.Response(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	obj, err := decodeStored(resp.Data)
	if err != nil {
		return err
	}
	items := slices.Clone(obj.StoredInput)
	if opts.Order != store.Asc {
		slices.Reverse(items)
	}
	if opts.After != "" {
		i := slices.IndexFunc(items, func(it apiItem) bool { return it.ID == opts.After })
		if i < 0 {
			return badRequest("after", "no input item %s in response %s", opts.After, obj.ID)
		}
		items = items[i+1:]
	}
	limit := opts.Limit
	if limit == 0 {
		limit = store.DefaultListLimit
	}
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	data := make([]json.RawMessage, len(items))
	ids := make([]string, len(items))
	for i, it := range items {
		if data[i], err = json.Marshal(it); err != nil {
			return err
		}
		ids[i] = it.ID
	}
	return writeJSON(w, http.StatusOK, listOf(data, ids, more))
}
