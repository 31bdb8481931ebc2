package agents

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/understudy/understudy/internal/store"
)

// Store is what the runtime needs of a region's store. *store.Engine (and
// so every driver embedding it) satisfies it.
type Store interface {
	// Update runs fn in one journaled write transaction at epoch.
	Update(ctx context.Context, epoch int64, fn func(*store.Tx) error) (store.Position, error)
	// Meta reports role, epoch, position and the known primary.
	Meta(ctx context.Context) (store.Meta, error)
	Conversation(ctx context.Context, id string) (store.Conversation, error)
	Item(ctx context.Context, convID, itemID string) (store.Item, error)
	ListItems(ctx context.Context, convID string, opts store.ListOptions) (store.ItemPage, error)
	Items(ctx context.Context, convID string) ([]store.Item, error)
	Response(ctx context.Context, id string) (store.Response, error)
	ResponseByKey(ctx context.Context, scope, key string) (store.Response, error)
	AgentVersion(ctx context.Context, name, version string) (store.AgentVersion, error)
	AgentVersions(ctx context.Context) ([]store.AgentVersion, error)
}

var _ Store = (*store.Engine)(nil)

// Completer sends an OpenAI chat-completions request body (stream or not)
// for a deployment through the region's backend pool (the gateway's Do
// method satisfies it) and returns the backend response. The caller closes
// the Body.
type Completer interface {
	Do(ctx context.Context, deployment string, body []byte) (*http.Response, error)
}

// CompleterFunc adapts a function to Completer.
type CompleterFunc func(ctx context.Context, deployment string, body []byte) (*http.Response, error)

// Do calls f.
func (f CompleterFunc) Do(ctx context.Context, deployment string, body []byte) (*http.Response, error) {
	return f(ctx, deployment, body)
}

// Options configure a Service.
type Options struct {
	// Store holds conversations, items, responses and agent versions.
	// Required.
	Store Store
	// Completer runs chat completions on a deployment. Required.
	Completer Completer
	// Deployments are the deployment names a turn may use (the topology's
	// deployments). Default none: every model name is passed on.
	Deployments []string
	// Epoch is the epoch writes are made in (the region's view of who is
	// primary). Default: the store's own epoch, read before each write.
	Epoch func() int64
	// KeyScope names the authenticated client key; Idempotency-Key values
	// are unique per scope. Default: one scope for every client.
	KeyScope func(ctx context.Context) string
	// AfterWrite is called with the position of every committed write
	// before the client is answered (sync replication waits here). An
	// error is answered 503: the write may not be replicated. Default none.
	AfterWrite func(ctx context.Context, pos store.Position) error
	// Logger receives request failures. Default discards.
	Logger *slog.Logger
	// Now is the clock for created_at and completed_at. Default time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies. Default 8 MiB.
	MaxBodyBytes int64
	// MaxChain bounds how many previous responses a turn follows through
	// previous_response_id. Default 1000.
	MaxChain int
}

// Service is the agents runtime: the Responses, Conversations and agents
// APIs over a Store and a Completer. It holds no goroutines; New starts
// nothing.
type Service struct {
	st         Store
	llm        Completer
	deps       map[string]bool
	depList    []string
	epoch      func() int64
	keyScope   func(ctx context.Context) string
	afterWrite func(ctx context.Context, pos store.Position) error
	log        *slog.Logger
	now        func() time.Time
	maxBody    int64
	maxChain   int
	keys       keyLocks
}

// New returns a Service for opts. It starts nothing.
func New(opts Options) *Service {
	s := &Service{
		st: opts.Store, llm: opts.Completer, epoch: opts.Epoch, keyScope: opts.KeyScope,
		afterWrite: opts.AfterWrite, log: opts.Logger, now: opts.Now,
		maxBody: opts.MaxBodyBytes, maxChain: opts.MaxChain,
		deps: map[string]bool{}, depList: append([]string(nil), opts.Deployments...),
	}
	for _, d := range opts.Deployments {
		s.deps[d] = true
	}
	if s.keyScope == nil {
		s.keyScope = func(context.Context) string { return "" }
	}
	if s.afterWrite == nil {
		s.afterWrite = func(context.Context, store.Position) error { return nil }
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = 8 << 20
	}
	if s.maxChain <= 0 {
		s.maxChain = 1000
	}
	s.keys.m = map[string]*keyLock{}
	return s
}

// Handler serves the client API: /v1/conversations…, /v1/responses… and
// /v1/agents…. Authentication and rate limits are the gateway's.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, s.adapt(fn))
	}
	h("POST /v1/conversations", s.createConversation)
	h("GET /v1/conversations/{id}", s.getConversation)
	h("POST /v1/conversations/{id}", s.updateConversation)
	h("DELETE /v1/conversations/{id}", s.deleteConversation)
	h("POST /v1/conversations/{id}/items", s.createItems)
	h("GET /v1/conversations/{id}/items", s.listItems)
	h("GET /v1/conversations/{id}/items/{item_id}", s.getItem)
	h("DELETE /v1/conversations/{id}/items/{item_id}", s.deleteItem)

	h("POST /v1/responses", s.createResponse)
	h("GET /v1/responses/{id}", s.getResponse)
	h("DELETE /v1/responses/{id}", s.deleteResponse)
	h("GET /v1/responses/{id}/input_items", s.listInputItems)

	h("GET /v1/agents", s.listAgents)
	h("GET /v1/agents/{name}", s.getAgent)
	h("/", func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such route: " + r.Method + " " + r.URL.Path}
	})
	return http.NewCrossOriginProtection().Handler(mux)
}

// AdminHandler serves the admin routes the gateway mounts behind its admin
// token: PUT /admin/agents (apply definitions) and GET /admin/agents.
func (s *Service) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("PUT /admin/agents", s.adapt(s.applyAgents))
	mux.Handle("GET /admin/agents", s.adapt(s.adminListAgents))
	return http.NewCrossOriginProtection().Handler(mux)
}

// writeEpoch is the epoch for the next write: Options.Epoch, or the
// store's own.
func (s *Service) writeEpoch(ctx context.Context) (int64, error) {
	if s.epoch != nil {
		return s.epoch(), nil
	}
	m, err := s.st.Meta(ctx)
	if err != nil {
		return 0, err
	}
	return m.Epoch, nil
}

// update runs fn in one store write and waits for AfterWrite: nothing is
// answered to a client before its write is acknowledged.
func (s *Service) update(ctx context.Context, fn func(*store.Tx) error) error {
	epoch, err := s.writeEpoch(ctx)
	if err != nil {
		return err
	}
	pos, err := s.st.Update(ctx, epoch, fn)
	if err != nil {
		return err
	}
	return s.acknowledge(ctx, pos)
}

// acknowledge calls AfterWrite for pos.
func (s *Service) acknowledge(ctx context.Context, pos store.Position) error {
	if err := s.afterWrite(ctx, pos); err != nil {
		return &replicationError{err: err, pos: pos}
	}
	return nil
}
