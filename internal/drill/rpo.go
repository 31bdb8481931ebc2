package drill

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
)

// RPOCheck is the result of reading back every acknowledged turn.
type RPOCheck struct {
	At time.Time `json:"at"`
	// Acked turns checked, their output Items, in Conversations.
	Acked         int `json:"acked_turns"`
	Items         int `json:"items"`
	Conversations int `json:"conversations"`
	// Lost items (and the turns they belong to) that are not readable.
	Lost      int `json:"lost_items"`
	LostTurns int `json:"lost_turns"`
	// Unverified items could not be checked (the listing failed).
	Unverified int `json:"unverified_items"`
	// FirstLost and LastLost are when the lost turns were acknowledged;
	// SpanMs the time between them (the span of data lost).
	FirstLost time.Time `json:"first_lost,omitzero"`
	LastLost  time.Time `json:"last_lost,omitzero"`
	SpanMs    float64   `json:"span_ms"`
	// Examples are a few lost item ids.
	Examples []string `json:"examples,omitempty"`
	// Errors are listing failures, a few.
	Errors []string `json:"errors,omitempty"`
}

// checkAcks lists every conversation of acks through client and counts
// the acknowledged output items it does not hold. Listing a conversation is
// retried for up to retryFor.
func checkAcks(ctx context.Context, client openai.Client, acks []Ack, retryFor time.Duration) RPOCheck {
	c := RPOCheck{At: time.Now(), Acked: len(acks)}
	byConv := map[string][]Ack{}
	var order []string
	for _, a := range acks {
		if _, ok := byConv[a.Conversation]; !ok {
			order = append(order, a.Conversation)
		}
		byConv[a.Conversation] = append(byConv[a.Conversation], a)
		c.Items += len(a.Items)
	}
	c.Conversations = len(order)
	var lostAt []time.Time
	for _, conv := range order {
		have, err := listItems(ctx, client, conv, retryFor)
		for _, a := range byConv[conv] {
			missing := 0
			for _, id := range a.Items {
				switch {
				case err != nil:
					c.Unverified++
				case !have[id]:
					missing++
					if len(c.Examples) < 5 {
						c.Examples = append(c.Examples, conv+"/"+id)
					}
				}
			}
			if missing > 0 {
				c.Lost += missing
				c.LostTurns++
				lostAt = append(lostAt, a.At)
			}
		}
		if err != nil && len(c.Errors) < 3 {
			c.Errors = append(c.Errors, conv+": "+err.Error())
		}
	}
	if len(lostAt) > 0 {
		sort.Slice(lostAt, func(i, j int) bool { return lostAt[i].Before(lostAt[j]) })
		c.FirstLost, c.LastLost = lostAt[0], lostAt[len(lostAt)-1]
		c.SpanMs = ms(c.LastLost.Sub(c.FirstLost))
	}
	return c
}

// listItems returns the ids of a conversation's items; a conversation that
// does not exist (404) holds nothing.
func listItems(ctx context.Context, client openai.Client, conv string, retryFor time.Duration) (map[string]bool, error) {
	deadline := time.Now().Add(retryFor)
	for {
		have := map[string]bool{}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		iter := client.Conversations.Items.ListAutoPaging(lctx, conv, conversations.ItemListParams{Limit: openai.Int(100)})
		for iter.Next() {
			have[iter.Current().ID] = true
		}
		err := iter.Err()
		cancel()
		if err == nil {
			return have, nil
		}
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			return map[string]bool{}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}
