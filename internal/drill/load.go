package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// Kind is a kind of request the load sends.
type Kind string

// The kinds of requests.
const (
	KindChat   Kind = "chat"   // chat completion, not streamed
	KindStream Kind = "stream" // chat completion, streamed
	KindAgent  Kind = "agent"  // Responses API turn in a conversation (a write)
)

// Kinds lists every kind in report order.
var Kinds = []Kind{KindChat, KindStream, KindAgent}

// Error kinds a Sample carries (besides "http_<status>").
const (
	ErrTimeout    = "timeout"           // no complete answer within RequestTimeout
	ErrConnection = "connection"        // no HTTP answer at all
	ErrStreamCut  = "stream_incomplete" // a stream that ended without a finish reason
	ErrOther      = "other"
)

// NoRegion is the region recorded for answers without an
// x-understudy-region header (the edge itself answered, or nothing did).
const NoRegion = "none"

// LoadConfig describes a bounded load of official-SDK requests through the
// edge.
type LoadConfig struct {
	// EdgeURL is the edge's base URL, e.g. http://127.0.0.1:7080. Required.
	EdgeURL string
	// Key is the client API key. Required.
	Key string
	// Model is the deployment name chat and agent turns use. Default
	// "gpt-4.1-mini".
	Model string
	// Agent is the agent that agent turns reference (agent_reference).
	// Default "": agent turns name Model instead.
	Agent string
	// ChatRate is the number of non-streamed chat completions started per
	// second (open loop: a slow answer does not delay the next). Default 0.
	ChatRate int
	// StreamRate is the number of streamed chat completions started per
	// second (open loop). Default 0.
	StreamRate int
	// AgentWorkers is the number of agent conversations driven at once,
	// each closed loop: one turn at a time, retried under the same
	// Idempotency-Key until acknowledged. Default 0.
	AgentWorkers int
	// AgentInterval is the pause between a worker's turns. Default 250ms.
	AgentInterval time.Duration
	// TurnsPerConversation starts a new conversation after that many turns,
	// so that prompts stay short. Default 20.
	TurnsPerConversation int
	// RetryFor is how long a worker retries one turn before abandoning it.
	// Default 30s.
	RetryFor time.Duration
	// RetryBackoff is the pause between retries of a turn. Default 200ms.
	RetryBackoff time.Duration
	// MaxTokens bounds each answer. Default 8.
	MaxTokens int
	// RequestTimeout bounds each request, stream included. Default 10s.
	RequestTimeout time.Duration
	// MaxInflight bounds open-loop requests in flight; a tick that finds
	// the bound reached is skipped and counted. Default 64.
	MaxInflight int
	// Duration stops issuing requests after that long. Default 0: until
	// Stop, Close or the context of Start ends.
	Duration time.Duration
	// MaxRequests stops issuing requests after that many (retries
	// included). Default 0: no bound.
	MaxRequests int64
	// MaxSamples bounds the samples kept (the oldest are dropped).
	// Default 200000.
	MaxSamples int
	// MaxAcks bounds the acknowledged turns kept for loss checks (the
	// oldest are dropped and counted in Snapshot.AcksDropped). Default 100000.
	MaxAcks int
	// HTTPClient sends the requests. Default: a client with its own pool.
	HTTPClient *http.Client
}

func (c *LoadConfig) defaults() {
	if c.Model == "" {
		c.Model = "gpt-4.1-mini"
	}
	if c.AgentInterval == 0 {
		c.AgentInterval = 250 * time.Millisecond
	}
	if c.TurnsPerConversation == 0 {
		c.TurnsPerConversation = 20
	}
	if c.RetryFor == 0 {
		c.RetryFor = 30 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 8
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 64
	}
	if c.MaxSamples == 0 {
		c.MaxSamples = 200000
	}
	if c.MaxAcks == 0 {
		c.MaxAcks = 100000
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     30 * time.Second,
		}}
	}
}

// Validate reports the first invalid field.
func (c LoadConfig) Validate() error {
	switch {
	case c.EdgeURL == "":
		return errors.New("load: EdgeURL is required")
	case c.Key == "":
		return errors.New("load: Key is required")
	case c.ChatRate < 0 || c.StreamRate < 0 || c.AgentWorkers < 0:
		return errors.New("load: rates and workers must not be negative")
	case c.ChatRate == 0 && c.StreamRate == 0 && c.AgentWorkers == 0:
		return errors.New("load: set ChatRate, StreamRate or AgentWorkers")
	case c.MaxRequests < 0 || c.Duration < 0:
		return errors.New("load: MaxRequests and Duration must not be negative")
	}
	return nil
}

// Sample is the outcome of one request (one attempt, for agent turns).
type Sample struct {
	Kind  Kind      `json:"kind"`
	Start time.Time `json:"start"`
	// Latency is until the answer was complete (a stream's last chunk).
	Latency time.Duration `json:"latency"`
	// TTFT is a stream's time to its first content chunk; 0 otherwise.
	TTFT time.Duration `json:"ttft,omitempty"`
	// Region is the answer's x-understudy-region, or NoRegion.
	Region string `json:"region"`
	// Status is the HTTP status, 0 without an answer.
	Status int `json:"status,omitempty"`
	// Err is the error kind, "" on success.
	Err string `json:"err,omitempty"`
	// Detail is the error message, bounded.
	Detail string `json:"detail,omitempty"`
}

// OK reports whether the request succeeded.
func (s Sample) OK() bool { return s.Err == "" }

// Ack is an agent turn the client saw acknowledged: its output items must
// stay readable whatever happens to a region.
type Ack struct {
	Conversation string    `json:"conversation"`
	Response     string    `json:"response"`
	Items        []string  `json:"items"`
	At           time.Time `json:"at"`
	Region       string    `json:"region"`
	// Attempts is how many requests the turn took (1 without retries).
	Attempts int `json:"attempts"`
}

// Load drives chat, streaming chat and agent conversations through the
// edge and records every outcome. New starts nothing; Start starts it;
// Stop or Close end it. Its methods are safe for concurrent use.
type Load struct {
	cfg    LoadConfig
	client openai.Client
	id     string

	mu        sync.Mutex
	samples   ring[Sample]
	acks      ring[Ack]
	started   time.Time
	stopped   time.Time
	totals    map[Kind]*Counts
	byRegion  map[string]*Counts
	errKinds  map[string]int
	convs     int
	retries   int64
	abandoned int64
	skipped   int64

	issued   atomic.Int64
	inflight atomic.Int64

	stopping  chan struct{} // closed by Stop: issue nothing new
	stopOnce  sync.Once
	hardCtx   context.Context // requests' parent; cancelled by Close after its deadline
	hardStop  context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
}

// NewLoad returns a load for cfg; it starts nothing.
func NewLoad(cfg LoadConfig) (*Load, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	base := strings.TrimRight(cfg.EdgeURL, "/") + "/v1/"
	l := &Load{
		cfg: cfg,
		client: openai.NewClient(option.WithBaseURL(base), option.WithAPIKey(cfg.Key),
			option.WithMaxRetries(0), // every failure the edge lets through counts
			option.WithHTTPClient(cfg.HTTPClient)),
		id:       fmt.Sprintf("%x", time.Now().UnixNano()),
		samples:  ring[Sample]{max: cfg.MaxSamples},
		acks:     ring[Ack]{max: cfg.MaxAcks},
		totals:   map[Kind]*Counts{},
		byRegion: map[string]*Counts{},
		errKinds: map[string]int{},
		stopping: make(chan struct{}),
	}
	return l, nil
}

// Start starts issuing requests. Cancelling ctx stops the load at once,
// requests in flight included; Stop ends it gracefully.
func (l *Load) Start(ctx context.Context) error {
	err := errors.New("load: already started")
	l.startOnce.Do(func() {
		err = nil
		l.hardCtx, l.hardStop = context.WithCancel(ctx)
		l.mu.Lock()
		l.started = time.Now()
		l.mu.Unlock()
		if l.cfg.Duration > 0 {
			l.wg.Go(func() {
				t := time.NewTimer(l.cfg.Duration)
				defer t.Stop()
				select {
				case <-t.C:
					l.stopIssuing()
				case <-l.stopping:
				case <-l.hardCtx.Done():
				}
			})
		}
		if l.cfg.ChatRate > 0 {
			l.wg.Go(func() { l.openLoop(KindChat, l.cfg.ChatRate, l.chat) })
		}
		if l.cfg.StreamRate > 0 {
			l.wg.Go(func() { l.openLoop(KindStream, l.cfg.StreamRate, l.stream) })
		}
		for w := range l.cfg.AgentWorkers {
			l.wg.Go(func() { l.agentWorker(w) })
		}
	})
	return err
}

// Stop stops issuing requests and waits for those in flight (each bounded
// by RequestTimeout).
func (l *Load) Stop() {
	l.stopIssuing()
	l.wg.Wait()
	l.markStopped()
}

// Close stops issuing requests and waits for those in flight until ctx
// ends, then cancels them.
func (l *Load) Close(ctx context.Context) error {
	l.stopIssuing()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if l.hardStop != nil {
			l.hardStop()
		}
		<-done
	}
	l.markStopped()
	if l.hardStop != nil {
		l.hardStop()
	}
	return nil
}

// Done is closed once the load stopped issuing requests (Stop, Close,
// Duration or MaxRequests reached).
func (l *Load) Done() <-chan struct{} { return l.stopping }

func (l *Load) stopIssuing() { l.stopOnce.Do(func() { close(l.stopping) }) }

func (l *Load) markStopped() {
	l.mu.Lock()
	if l.stopped.IsZero() {
		l.stopped = time.Now()
	}
	l.mu.Unlock()
}

// issuing reports whether a new request may start, and counts it.
func (l *Load) issuing() bool {
	select {
	case <-l.stopping:
		return false
	case <-l.hardCtx.Done():
		return false
	default:
	}
	if n := l.issued.Add(1); l.cfg.MaxRequests > 0 && n > l.cfg.MaxRequests {
		l.stopIssuing()
		return false
	}
	return true
}

// openLoop starts fn rate times per second until the load stops.
func (l *Load) openLoop(kind Kind, rate int, fn func(ctx context.Context) Sample) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-l.stopping:
			return
		case <-l.hardCtx.Done():
			return
		}
		if l.inflight.Load() >= int64(l.cfg.MaxInflight) {
			l.mu.Lock()
			l.skipped++
			l.mu.Unlock()
			continue
		}
		if !l.issuing() {
			return
		}
		l.inflight.Add(1)
		wg.Go(func() {
			defer l.inflight.Add(-1)
			ctx, cancel := context.WithTimeout(l.hardCtx, l.cfg.RequestTimeout)
			defer cancel()
			l.record(fn(ctx))
		})
	}
}

func (l *Load) chatParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:     l.cfg.Model,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		MaxTokens: openai.Int(int64(l.cfg.MaxTokens)),
	}
}

func (l *Load) chat(ctx context.Context) Sample {
	s := Sample{Kind: KindChat, Start: time.Now()}
	var resp *http.Response
	_, err := l.client.Chat.Completions.New(ctx, l.chatParams(), option.WithResponseInto(&resp))
	s.Latency = time.Since(s.Start)
	s.finish(resp, err)
	return s
}

func (l *Load) stream(ctx context.Context) Sample {
	s := Sample{Kind: KindStream, Start: time.Now()}
	var resp *http.Response
	st := l.client.Chat.Completions.NewStreaming(ctx, l.chatParams(), option.WithResponseInto(&resp))
	finished := false
	for st.Next() {
		ch := st.Current()
		if len(ch.Choices) == 0 {
			continue
		}
		if s.TTFT == 0 && ch.Choices[0].Delta.Content != "" {
			s.TTFT = time.Since(s.Start)
		}
		if ch.Choices[0].FinishReason != "" {
			finished = true
		}
	}
	err := st.Err()
	st.Close()
	s.Latency = time.Since(s.Start)
	if err == nil && !finished {
		err = errStreamCut
	}
	s.finish(resp, err)
	if err != nil {
		s.TTFT = 0
	}
	return s
}

var errStreamCut = errors.New("stream ended without a finish reason")

// agentWorker holds a conversation and takes turns until the load stops.
func (l *Load) agentWorker(w int) {
	var conv string
	turns := 0
	pause := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-l.stopping:
			return false
		case <-l.hardCtx.Done():
			return false
		}
	}
	for n := 0; ; n++ {
		if conv == "" || turns >= l.cfg.TurnsPerConversation {
			conv, turns = "", 0
			for conv == "" {
				if !l.issuing() {
					return
				}
				s, id := l.newConversation()
				l.record(s)
				if id != "" {
					conv = id
					l.mu.Lock()
					l.convs++
					l.mu.Unlock()
				} else if !pause(l.cfg.RetryBackoff) {
					return
				}
			}
		}
		key := fmt.Sprintf("drill-%s-%d-%d", l.id, w, n)
		first := time.Now()
		for attempt := 1; ; attempt++ {
			if !l.issuing() {
				return
			}
			s, a := l.turn(conv, key, fmt.Sprintf("turn %d of worker %d", turns, w))
			l.record(s)
			if s.OK() {
				a.Attempts = attempt
				l.mu.Lock()
				l.acks.add(a)
				l.mu.Unlock()
				turns++
				break
			}
			l.mu.Lock()
			l.retries++
			l.mu.Unlock()
			if time.Since(first) > l.cfg.RetryFor {
				l.mu.Lock()
				l.abandoned++
				l.mu.Unlock()
				conv = "" // start afresh: the conversation may be gone
				break
			}
			if !pause(l.cfg.RetryBackoff) {
				return
			}
		}
		if !pause(l.cfg.AgentInterval) {
			return
		}
	}
}

func (l *Load) newConversation() (Sample, string) {
	ctx, cancel := context.WithTimeout(l.hardCtx, l.cfg.RequestTimeout)
	defer cancel()
	s := Sample{Kind: KindAgent, Start: time.Now()}
	var resp *http.Response
	c, err := l.client.Conversations.New(ctx, conversations.ConversationNewParams{}, option.WithResponseInto(&resp))
	s.Latency = time.Since(s.Start)
	s.finish(resp, err)
	if err != nil {
		return s, ""
	}
	return s, c.ID
}

func (l *Load) turn(conv, key, input string) (Sample, Ack) {
	ctx, cancel := context.WithTimeout(l.hardCtx, l.cfg.RequestTimeout)
	defer cancel()
	s := Sample{Kind: KindAgent, Start: time.Now()}
	params := responses.ResponseNewParams{
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String(input)},
		Conversation:    responses.ResponseNewParamsConversationUnion{OfString: openai.String(conv)},
		MaxOutputTokens: openai.Int(int64(l.cfg.MaxTokens)),
	}
	opts := []option.RequestOption{option.WithHeader("Idempotency-Key", key)}
	if l.cfg.Agent != "" {
		opts = append(opts, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": l.cfg.Agent}))
	} else {
		params.Model = l.cfg.Model
	}
	var resp *http.Response
	opts = append(opts, option.WithResponseInto(&resp))
	r, err := l.client.Responses.New(ctx, params, opts...)
	s.Latency = time.Since(s.Start)
	s.finish(resp, err)
	if err != nil {
		return s, Ack{}
	}
	a := Ack{Conversation: conv, Response: r.ID, At: time.Now(), Region: s.Region}
	for _, o := range r.Output {
		a.Items = append(a.Items, o.ID)
	}
	return s, a
}

// finish fills the region, status and error kind from an answer.
func (s *Sample) finish(resp *http.Response, err error) {
	s.Region = NoRegion
	if resp != nil {
		s.Status = resp.StatusCode
		if r := resp.Header.Get("X-Understudy-Region"); r != "" {
			s.Region = r
		}
	}
	if err == nil {
		return
	}
	s.Err = Classify(err)
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	s.Detail = msg
}

// Classify names the kind of a request's error: "http_<status>" for an
// error answer, or timeout, connection, stream_incomplete, other.
func Classify(err error) string {
	var apiErr *openai.Error
	var netErr net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &apiErr):
		return fmt.Sprintf("http_%d", apiErr.StatusCode)
	case errors.Is(err, errStreamCut):
		return ErrStreamCut
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case errors.As(err, &netErr), strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "connection"):
		return ErrConnection
	}
	return ErrOther
}

func (l *Load) record(s Sample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples.add(s)
	c := l.totals[s.Kind]
	if c == nil {
		c = &Counts{}
		l.totals[s.Kind] = c
	}
	r := l.byRegion[s.Region]
	if r == nil {
		r = &Counts{}
		l.byRegion[s.Region] = r
	}
	c.Requests++
	r.Requests++
	if !s.OK() {
		c.Errors++
		r.Errors++
		l.errKinds[s.Err]++
	}
}

// Samples returns the samples kept, oldest first.
func (l *Load) Samples() []Sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.samples.list()
}

// Acks returns the acknowledged agent turns kept, oldest first.
func (l *Load) Acks() []Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks.list()
}

// Counts are requests and errors.
type Counts struct {
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
}

// Second is one second of the load's timeline, by the requests' start time.
type Second struct {
	At time.Time `json:"at"`
	// Requests and Errors by the region that answered (NoRegion: none did).
	Requests map[string]int `json:"requests"`
	Errors   map[string]int `json:"errors"`
	// ByKind counts requests and errors per kind.
	ByKind map[Kind]Counts `json:"by_kind"`
}

// Snapshot is the load's state for dashboards and progress lines.
type Snapshot struct {
	Started  time.Time         `json:"started"`
	Running  bool              `json:"running"`
	Elapsed  float64           `json:"elapsed_s"`
	Total    Counts            `json:"total"`
	ByKind   map[Kind]Counts   `json:"by_kind"`
	ByRegion map[string]Counts `json:"by_region"`
	// ErrorKinds counts errors by kind (timeout, http_503, ...).
	ErrorKinds map[string]int `json:"error_kinds"`
	// Acked is the number of agent turns acknowledged; AckedItems their
	// output items; AcksDropped those no longer kept (MaxAcks).
	Acked         int   `json:"acked"`
	AckedItems    int   `json:"acked_items"`
	AcksDropped   int   `json:"acks_dropped"`
	Conversations int   `json:"conversations"`
	Retries       int64 `json:"retries"`
	Abandoned     int64 `json:"abandoned"`
	Skipped       int64 `json:"skipped"`
	// Series is the last SeriesSeconds seconds, one entry per second.
	Series []Second `json:"series"`
	// Recent is latency over the last RecentWindow.
	Recent Window `json:"recent"`
}

// SeriesSeconds and RecentWindow shape Snapshot.
const (
	SeriesSeconds = 60
	RecentWindow  = 10 * time.Second
)

// Snapshot returns totals, the last minute per second and the latency of
// the last ten seconds.
func (l *Load) Snapshot() Snapshot {
	now := time.Now()
	l.mu.Lock()
	sn := Snapshot{
		Started: l.started, Running: !l.started.IsZero() && l.stopped.IsZero(),
		ByKind: map[Kind]Counts{}, ByRegion: map[string]Counts{}, ErrorKinds: map[string]int{},
		Acked: l.acks.len(), AcksDropped: l.acks.dropped, Conversations: l.convs,
		Retries: l.retries, Abandoned: l.abandoned, Skipped: l.skipped,
	}
	for k, c := range l.totals {
		sn.ByKind[k] = *c
		sn.Total.Requests += c.Requests
		sn.Total.Errors += c.Errors
	}
	for r, c := range l.byRegion {
		sn.ByRegion[r] = *c
	}
	for k, n := range l.errKinds {
		sn.ErrorKinds[k] = n
	}
	for _, a := range l.acks.items {
		sn.AckedItems += len(a.Items)
	}
	sn.Acked += l.acks.dropped
	samples := l.samples.list()
	l.mu.Unlock()
	if !sn.Started.IsZero() {
		sn.Elapsed = now.Sub(sn.Started).Seconds()
	}
	from := now.Add(-SeriesSeconds * time.Second).Truncate(time.Second)
	sn.Series = Series(samples, from, now)
	sn.Recent = Summarize(samples, now.Add(-RecentWindow), now)
	return sn
}

// Series buckets samples by the second they started in, from..to.
func Series(samples []Sample, from, to time.Time) []Second {
	from = from.Truncate(time.Second)
	n := int(to.Sub(from)/time.Second) + 1
	if n <= 0 {
		return nil
	}
	out := make([]Second, n)
	for i := range out {
		out[i] = Second{At: from.Add(time.Duration(i) * time.Second), Requests: map[string]int{}, Errors: map[string]int{}, ByKind: map[Kind]Counts{}}
	}
	for _, s := range samples {
		i := int(s.Start.Sub(from) / time.Second)
		if s.Start.Before(from) || i >= n {
			continue
		}
		b := &out[i]
		b.Requests[s.Region]++
		c := b.ByKind[s.Kind]
		c.Requests++
		if !s.OK() {
			b.Errors[s.Region]++
			c.Errors++
		}
		b.ByKind[s.Kind] = c
	}
	return out
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Window summarizes the samples started within a time window.
type Window struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Requests int       `json:"requests"`
	Errors   int       `json:"errors"`
	// ErrorKinds counts errors by kind.
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	// Latency of successful requests by kind; TTFT of successful streams.
	Latency map[Kind]Percentiles `json:"latency"`
	TTFT    Percentiles          `json:"ttft"`
}

// Summarize returns the counts and latency percentiles of the samples that
// started in [from, to).
func Summarize(samples []Sample, from, to time.Time) Window {
	w := Window{From: from, To: to, ErrorKinds: map[string]int{}, Latency: map[Kind]Percentiles{}}
	lat := map[Kind][]time.Duration{}
	var ttft []time.Duration
	for _, s := range samples {
		if s.Start.Before(from) || !s.Start.Before(to) {
			continue
		}
		w.Requests++
		if !s.OK() {
			w.Errors++
			w.ErrorKinds[s.Err]++
			continue
		}
		lat[s.Kind] = append(lat[s.Kind], s.Latency)
		if s.Kind == KindStream && s.TTFT > 0 {
			ttft = append(ttft, s.TTFT)
		}
	}
	for k, d := range lat {
		w.Latency[k] = percentiles(d)
	}
	w.TTFT = percentiles(ttft)
	return w
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 {
		i := int(q*float64(len(d))+0.5) - 1 // nearest rank
		i = min(max(i, 0), len(d)-1)
		return ms(d[i])
	}
	return Percentiles{Count: len(d), P50: at(0.50), P99: at(0.99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ring keeps the last max values added.
type ring[T any] struct {
	max     int
	items   []T
	next    int // where the next value goes once full
	dropped int
}

func (r *ring[T]) add(v T) {
	if len(r.items) < r.max {
		r.items = append(r.items, v)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % r.max
	r.dropped++
}

func (r *ring[T]) len() int { return len(r.items) }

func (r *ring[T]) list() []T {
	out := make([]T, 0, len(r.items))
	out = append(out, r.items[r.next:]...)
	return append(out, r.items[:r.next]...)
}
