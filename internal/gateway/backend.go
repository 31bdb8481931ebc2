package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/understudy/understudy/internal/h1"
	"github.com/understudy/understudy/internal/topology"
)

// backend is one model server behind a deployment in this region.
type backend struct {
	name       string
	deployment string
	kind       string
	model      string // the name the backend serves the deployment under
	modelJSON  []byte // model as a JSON string, for body rewriting
	priority   int
	weight     int
	// rewrite: openai and sim backends take the model from the body, so
	// the body's model is set to model; azure-openai takes it from the path.
	rewrite bool
	urls    [2]*url.URL // per endpoint: chat completions, embeddings
	auth    authorizer
	// nameHdr is the x-understudy-backend header value.
	nameHdr []string
	// results counts attempts by result (backend_attempts_total).
	results [numResults]prometheus.Counter

	st backendState // guarded by the pool's mutex
}

// authorizer sets a backend's credentials on an outgoing request.
type authorizer func(ctx context.Context, h http.Header) error

// EntraScope is the token scope of Azure OpenAI and Foundry model endpoints.
const EntraScope = "https://cognitiveservices.azure.com/.default"

func newBackend(dep string, cfg topology.Backend, cred func() (azcore.TokenCredential, error)) (*backend, error) {
	b := &backend{
		name: cfg.Name, deployment: dep, kind: cfg.Kind, model: cfg.Model,
		priority: cfg.Priority, weight: max(cfg.Weight, 1), nameHdr: []string{cfg.Name},
	}
	b.modelJSON, _ = json.Marshal(cfg.Model)
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("backend %s: url %q is not an http(s) URL", cfg.Name, cfg.URL)
	}
	if base.Path == "" {
		base.Path = "/"
	}
	switch cfg.Kind {
	case topology.KindSim, topology.KindOpenAI:
		b.rewrite = true
		b.urls[chatEndpoint] = base.JoinPath("v1", "chat", "completions")
		b.urls[embeddingsEndpoint] = base.JoinPath("v1", "embeddings")
	case topology.KindAzureOpenAI:
		q := url.Values{"api-version": {cfg.APIVersion}}.Encode()
		for e, op := range map[endpoint][]string{chatEndpoint: {"chat", "completions"}, embeddingsEndpoint: {"embeddings"}} {
			u := base.JoinPath(append([]string{"openai", "deployments", cfg.Model}, op...)...)
			u.RawQuery = q
			b.urls[e] = u
		}
	default:
		return nil, fmt.Errorf("backend %s: unknown kind %q", cfg.Name, cfg.Kind)
	}
	switch cfg.Auth {
	case "", "none":
	case "bearer":
		v := []string{"Bearer " + cfg.APIKey.Value()}
		b.auth = func(_ context.Context, h http.Header) error { h["Authorization"] = v; return nil }
	case "api-key":
		v := []string{cfg.APIKey.Value()}
		b.auth = func(_ context.Context, h http.Header) error { h["Api-Key"] = v; return nil }
	case "entra":
		c, err := cred()
		if err != nil {
			return nil, fmt.Errorf("backend %s: entra credential: %w", cfg.Name, err)
		}
		b.auth = newEntraAuth(c).authorize
	default:
		return nil, fmt.Errorf("backend %s: unknown auth %q", cfg.Name, cfg.Auth)
	}
	return b, nil
}

// entraAuth caches an Entra ID token for every backend sharing a
// credential until shortly before it expires (or its RefreshOn).
type entraAuth struct {
	cred azcore.TokenCredential
	now  func() time.Time

	mu  sync.Mutex
	tok azcore.AccessToken
}

// entraMargin is how long before expiry a cached token is refreshed.
const entraMargin = 5 * time.Minute

func newEntraAuth(c azcore.TokenCredential) *entraAuth {
	return &entraAuth{cred: c, now: time.Now}
}

func (e *entraAuth) authorize(ctx context.Context, h http.Header) error {
	tok, err := e.token(ctx)
	if err != nil {
		return err
	}
	h["Authorization"] = []string{"Bearer " + tok}
	return nil
}

func (e *entraAuth) token(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if e.tok.Token != "" && now.Before(e.refreshAt()) {
		return e.tok.Token, nil
	}
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EntraScope}})
	if err != nil {
		if e.tok.Token != "" && now.Before(e.tok.ExpiresOn) {
			return e.tok.Token, nil // keep using a token that is still valid
		}
		return "", fmt.Errorf("get entra token: %w", err)
	}
	e.tok = tok
	return tok.Token, nil
}

func (e *entraAuth) refreshAt() time.Time {
	at := e.tok.ExpiresOn.Add(-entraMargin)
	if !e.tok.RefreshOn.IsZero() && e.tok.RefreshOn.Before(at) {
		at = e.tok.RefreshOn
	}
	return at
}

// newRequest builds the request for one attempt at b.
func (b *backend) newRequest(ctx context.Context, e endpoint, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", nil)
	if err != nil {
		return nil, err
	}
	req.Body = h1.NewBytesBody(body)
	req.GetBody = func() (io.ReadCloser, error) { return h1.NewBytesBody(body), nil }
	req.ContentLength = int64(len(body))
	u := b.urls[e]
	req.URL = u
	req.Host = u.Host
	h := req.Header
	h["Content-Type"] = hdrJSON
	h["Accept"] = hdrAccept
	h["User-Agent"] = hdrUA
	if b.auth != nil {
		if err := b.auth(ctx, h); err != nil {
			return nil, err
		}
	}
	return req, nil
}

var (
	hdrAccept = []string{"application/json, text/event-stream"}
	hdrUA     = []string{"understudy-gateway"}
)
