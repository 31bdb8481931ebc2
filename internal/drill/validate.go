package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// The validations that define "serving", checked together in rounds.
const (
	CheckInference = "inference"  // a chat completion through the edge
	CheckAgentTurn = "agent_turn" // a Responses turn through the edge
	CheckWrite     = "write"      // an item appended to a conversation through the edge
)

// Checks lists the validations in report order.
var Checks = []string{CheckInference, CheckAgentTurn, CheckWrite}

// Round is one round of validations.
type Round struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	OK    bool      `json:"ok"`
	// Failed names the failed checks with their error kind.
	Failed map[string]string `json:"failed,omitempty"`
	// Region answered the agent turn.
	Region string `json:"region,omitempty"`
}

// validator runs rounds of validations through the edge, every interval,
// each check bounded by timeout.
type validator struct {
	client   openai.Client
	model    string
	agent    string
	every    time.Duration
	timeout  time.Duration
	maxRound int

	conv string

	mu     sync.Mutex
	rounds []Round
}

func newValidator(edgeURL, key, model, agent string, every, timeout time.Duration) *validator {
	return &validator{
		client: openai.NewClient(option.WithBaseURL(strings.TrimRight(edgeURL, "/")+"/v1/"), option.WithAPIKey(key),
			option.WithMaxRetries(0), option.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}})),
		model: model, agent: agent, every: every, timeout: timeout, maxRound: 20000,
	}
}

// prepare creates the conversation write checks append to.
func (v *validator) prepare(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := v.client.Conversations.New(ctx, conversations.ConversationNewParams{
		Metadata: map[string]string{"purpose": "understudy drill validation"},
	})
	if err != nil {
		return fmt.Errorf("create the validation conversation: %w", err)
	}
	v.conv = c.ID
	return nil
}

// run runs rounds until ctx ends.
func (v *validator) run(ctx context.Context) {
	for {
		start := time.Now()
		r := v.round(ctx)
		if ctx.Err() != nil {
			return
		}
		v.mu.Lock()
		if len(v.rounds) < v.maxRound {
			v.rounds = append(v.rounds, r)
		}
		v.mu.Unlock()
		wait := v.every - time.Since(start)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// round runs every check at once.
func (v *validator) round(ctx context.Context) Round {
	r := Round{Start: time.Now(), Failed: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	fail := func(check string, err error) {
		if err != nil && ctx.Err() == nil {
			mu.Lock()
			r.Failed[check] = Classify(err)
			mu.Unlock()
		}
	}
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, v.timeout)
		defer cancel()
		_, err := v.client.Chat.Completions.New(cctx, openai.ChatCompletionNewParams{
			Model:     v.model,
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("drill validation")},
			MaxTokens: openai.Int(4),
		})
		fail(CheckInference, err)
	})
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, v.timeout)
		defer cancel()
		params := responses.ResponseNewParams{
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("drill validation")},
			MaxOutputTokens: openai.Int(4),
		}
		var opts []option.RequestOption
		if v.agent != "" {
			opts = append(opts, option.WithJSONSet("agent_reference", map[string]string{"type": "agent_reference", "name": v.agent}))
		} else {
			params.Model = v.model
		}
		var resp *http.Response
		_, err := v.client.Responses.New(cctx, params, append(opts, option.WithResponseInto(&resp))...)
		if err == nil && resp != nil {
			mu.Lock()
			r.Region = resp.Header.Get("X-Understudy-Region")
			mu.Unlock()
		}
		fail(CheckAgentTurn, err)
	})
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, v.timeout)
		defer cancel()
		var err error
		if v.conv == "" {
			err = errors.New("no validation conversation")
		} else {
			_, err = v.client.Conversations.Items.New(cctx, v.conv, conversations.ItemNewParams{
				Items: []responses.ResponseInputItemUnionParam{responses.ResponseInputItemParamOfMessage("drill write check", responses.EasyInputMessageRoleUser)},
			})
		}
		fail(CheckWrite, err)
	})
	wg.Wait()
	r.End = time.Now()
	r.OK = len(r.Failed) == 0
	if r.OK {
		r.Failed = nil
	}
	return r
}

// Rounds returns the rounds so far.
func (v *validator) Rounds() []Round {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Round(nil), v.rounds...)
}

// stablePassing reports whether every round that ended in the last d
// passed, and at least one round started that long ago or more and passed.
func stablePassing(rounds []Round, now time.Time, d time.Duration) bool {
	if len(rounds) == 0 {
		return false
	}
	since := now.Add(-d)
	covered := false
	for i := len(rounds) - 1; i >= 0; i-- {
		r := rounds[i]
		if !r.OK {
			return false
		}
		if !r.Start.After(since) {
			covered = true
			break
		}
	}
	return covered
}

// Recovery is what the validation rounds say about one fault.
type Recovery struct {
	// Interrupted is whether any round failed between the injection and
	// the end of the observation.
	Interrupted bool
	// Recovered is whether the rounds passed from some point on to the end.
	Recovered bool
	// At is when the first round of the final passing streak ended (the
	// RTO's end); zero when not interrupted or not recovered.
	At time.Time
	// FirstFailure and LastFailure are the failed rounds' start times.
	FirstFailure, LastFailure time.Time
	// Failed is how many rounds failed; Rounds how many ran.
	Failed, Rounds int
	// FailedChecks counts failures per check and error kind.
	FailedChecks map[string]map[string]int
}

// recovery reads the rounds that started in [from, to).
func recovery(rounds []Round, from, to time.Time) Recovery {
	rec := Recovery{FailedChecks: map[string]map[string]int{}}
	lastFail := -1
	var in []Round
	for _, r := range rounds {
		if r.Start.Before(from) || !r.Start.Before(to) {
			continue
		}
		in = append(in, r)
	}
	for i, r := range in {
		rec.Rounds++
		if r.OK {
			continue
		}
		rec.Failed++
		if rec.FirstFailure.IsZero() {
			rec.FirstFailure = r.Start
		}
		rec.LastFailure = r.Start
		lastFail = i
		for c, kind := range r.Failed {
			if rec.FailedChecks[c] == nil {
				rec.FailedChecks[c] = map[string]int{}
			}
			rec.FailedChecks[c][kind]++
		}
	}
	switch {
	case lastFail < 0:
		rec.Recovered = rec.Rounds > 0
	case lastFail == len(in)-1:
		rec.Interrupted = true
	default:
		rec.Interrupted, rec.Recovered = true, true
		rec.At = in[lastFail+1].End
	}
	return rec
}
