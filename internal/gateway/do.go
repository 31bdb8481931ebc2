package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Do sends a chat-completions request body (streaming or not) to
// deployment through the pool, with every retry, timeout and fallback rule
// of the HTTP surface, for in-process callers such as the agents runtime.
// It returns once the answering backend's headers (and, for streams, its
// first event) arrived; the Body then yields exactly what a client of the
// gateway would receive, including a final error event if a stream breaks.
// Close the Body. No client key is charged. Failures are *Error values
// (errors.AsType[*Error]); a provider's own rejection keeps its body
// (Error.Provider).
func (g *Gateway) Do(ctx context.Context, deployment string, body []byte) (*http.Response, error) {
	d := g.deps[deployment]
	if d == nil {
		return nil, errUnknownDeployment(deployment)
	}
	req, err := parseRequest(body, chatEndpoint)
	if err != nil {
		return nil, err
	}
	res, err := g.call(ctx, &call{ep: chatEndpoint, dep: d, body: body, req: req})
	if err != nil {
		if errors.Is(err, errClientGone) {
			return nil, ctx.Err()
		}
		return nil, err
	}
	h := http.Header{}
	copyPassHeaders(h, res.header)
	h["X-Understudy-Backend"] = res.backend.nameHdr
	h["X-Understudy-Region"] = g.regionHdr
	h["X-Understudy-Deployment"] = []string{res.dep.name}
	resp := &http.Response{
		StatusCode: res.status, Status: strconv.Itoa(res.status) + " " + http.StatusText(res.status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, ContentLength: -1,
	}
	if res.stream != nil {
		h["Content-Type"] = hdrSSE
		resp.Body = &streamBody{s: res.stream}
		return resp, nil
	}
	h["Content-Type"] = hdrJSON
	if ct := res.header["Content-Type"]; len(ct) > 0 {
		h["Content-Type"] = ct
	}
	resp.ContentLength = int64(len(res.body))
	resp.Body = io.NopCloser(bytes.NewReader(res.body))
	return resp, nil
}
