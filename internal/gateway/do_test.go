package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/understudy/understudy/internal/modelsim"
	"github.com/understudy/understudy/internal/topology"
)

// TestDo: the in-process entry point used by the agents runtime follows the
// same pool rules and yields what a client would read.
func TestDo(t *testing.T) {
	g, a, _ := twoBackends(t, nil)
	ctx := t.Context()
	a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 500})

	resp, err := g.Do(ctx, "m", []byte(chatBody("whatever", false)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Understudy-Backend") != "b" || !strings.Contains(string(body), `"chat.completion"`) {
		t.Fatalf("Do: %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Understudy-Backend"), body)
	}

	resp, err = g.Do(ctx, "m", []byte(chatBody("m", true)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasSuffix(string(body), "data: [DONE]\n\n") || len(sseEvents(string(body))) != 8 {
		t.Fatalf("Do stream: %q\n%s", resp.Header.Get("Content-Type"), body)
	}

	// A stream cut after its first chunk ends with the error event, for Do too.
	g.clock.Advance(time.Hour) // a is back
	a.SetFaults(modelsim.Faults{CutAfter: 1})
	resp, err = g.Do(ctx, "m", []byte(chatBody("m", true)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	evs := sseEvents(string(body))
	if resp.Header.Get("X-Understudy-Backend") != "a" || apiErr(t, evs[len(evs)-1]).code() != "stream_interrupted" {
		t.Fatalf("Do cut stream from %q:\n%s", resp.Header.Get("X-Understudy-Backend"), body)
	}

	// Failures are *Error values; a provider's rejection keeps its body.
	g.clock.Advance(time.Hour) // a (ejected for the cut) is due a trial
	a.SetFaults(modelsim.Faults{ErrorRate: 1, ErrorStatus: 400, ErrorCode: "content_filter"})
	_, err = g.Do(ctx, "m", []byte(chatBody("m", false)))
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Status != 400 || e.Code != "content_filter" {
		t.Fatalf("Do content filter: %v", err)
	}
	if raw, ok := e.Provider(); !ok || !strings.Contains(string(raw), "modelsim fault") {
		t.Errorf("provider body %q", raw)
	}
	if _, err := g.Do(ctx, "nope", []byte(chatBody("m", false))); err == nil {
		t.Error("Do on an unknown deployment succeeded")
	} else if e, ok := errors.AsType[*Error](err); !ok || e.Status != 404 {
		t.Errorf("Do unknown deployment: %v", err)
	}
	if _, err := g.Do(ctx, "m", []byte("{")); err == nil {
		t.Error("Do with bad JSON succeeded")
	}
}

// TestDoCloseAbortsRead: closing a Do stream from another goroutine ends a
// Read that waits for the backend, and does not blame the backend.
func TestDoCloseAbortsRead(t *testing.T) {
	a := newSim(t, "m")
	a.SetFaults(modelsim.Faults{StallAfter: 1})
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{"m": {openaiBackend("a", a.URL(), 1)}}, nil)
	g := startGateway(t, tp)
	resp, err := g.Do(t.Context(), "m", []byte(chatBody("m", true)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	n, _ := resp.Body.Read(buf) // the first event, already there
	if !strings.HasPrefix(string(buf[:n]), "data: {") {
		t.Fatalf("first read %q", buf[:n])
	}
	done := make(chan error)
	go func() {
		var err error
		for err == nil {
			_, err = resp.Body.Read(buf)
		}
		done <- err
	}()
	resp.Body.Close()
	if err := <-done; err == nil {
		t.Fatal("read did not end")
	}
	if st := g.deps["m"].pool.status()[0]; st.State != stateHealthy {
		t.Errorf("backend blamed for an abandoned stream: %+v", st)
	}
}

// fakeCredential is an Entra ID credential that counts token requests.
type fakeCredential struct {
	mu     sync.Mutex
	calls  int
	scopes []string
	now    func() time.Time
	ttl    time.Duration
	err    error
}

func (c *fakeCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.scopes = o.Scopes
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: "tok-" + string(rune('0'+c.calls)), ExpiresOn: c.now().Add(c.ttl)}, nil
}

// TestEntraBackend: an azure-openai backend with auth entra gets a bearer
// token for the Cognitive Services scope, cached until shortly before it
// expires.
func TestEntraBackend(t *testing.T) {
	s := modelsim.New(modelsim.Config{Model: "gpt-4o", MaxTokens: 2}, nil)
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization")+" "+r.URL.Path)
		mu.Unlock()
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cred := &fakeCredential{now: time.Now, ttl: time.Hour}
	tp := topo(t, []string{"m"}, map[string][]topology.Backend{
		"m": {{Name: "az", Kind: topology.KindAzureOpenAI, URL: srv.URL, Model: "gpt-4o-prod"}},
	}, nil)
	if tp.Regions[0].Backends["m"][0].Auth != "entra" {
		t.Fatalf("auth defaulted to %q", tp.Regions[0].Backends["m"][0].Auth)
	}
	g, err := New(tp, testRegion, Options{TokenCredential: cred})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, err := g.Do(t.Context(), "m", []byte(chatBody("m", false)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auths {
		if a != "Bearer tok-1 /openai/deployments/gpt-4o-prod/chat/completions" {
			t.Errorf("backend saw %q", a)
		}
	}
	if cred.calls != 1 || len(cred.scopes) != 1 || cred.scopes[0] != EntraScope {
		t.Errorf("%d token requests with scopes %v, want 1 with %s", cred.calls, cred.scopes, EntraScope)
	}
}

// TestEntraTokenCache: refreshed entraMargin before expiry; a failed
// refresh keeps a token that is still valid; no token is an error.
func TestEntraTokenCache(t *testing.T) {
	clock := newFakeClock()
	cred := &fakeCredential{now: clock.Now, ttl: time.Hour}
	e := newEntraAuth(cred)
	e.now = clock.Now
	ctx := t.Context()
	tok := func() string {
		s, err := e.token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if tok() != "tok-1" {
		t.Fatal("first token")
	}
	clock.Advance(time.Hour - entraMargin - time.Nanosecond)
	if tok() != "tok-1" || cred.calls != 1 {
		t.Fatalf("refreshed too early (%d calls)", cred.calls)
	}
	clock.Advance(time.Nanosecond)
	if tok() != "tok-2" || cred.calls != 2 {
		t.Fatalf("not refreshed %s before expiry", entraMargin)
	}
	clock.Advance(time.Hour - time.Minute) // inside the margin again
	cred.err = errors.New("token endpoint down")
	if tok() != "tok-2" {
		t.Fatal("a still valid token was dropped on a failed refresh")
	}
	clock.Advance(2 * time.Minute) // expired
	if _, err := e.token(ctx); err == nil {
		t.Fatal("expired token used")
	}
}
