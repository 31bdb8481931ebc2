// Package gateway is one region's AI gateway (the API Management role): the
// OpenAI and Azure OpenAI surfaces in front of pools of model backends.
//
// A request is authenticated by client key (Bearer or api-key, found by
// its SHA-256), charged to the key's RPM and estimated TPM (corrected with
// the real usage afterwards), and sent to its deployment's pool. The pool
// picks by priority, then weight; a 429 cools a backend down for its
// Retry-After, a 5xx, timeout or connection error ejects it with
// exponential backoff, and after the ejection one trial request decides
// whether it is back. A failed attempt moves to the next backend, then to
// fallback deployments, within one overall deadline and a bounded number of
// attempts, and never once a byte reached the client. Streams are relayed
// event by event, each validated, and a stream that cannot finish ends with
// an explicit error event instead of a silent truncation.
//
// The hot path reads only what it must of a body (model, stream flag,
// token hints) in one validating pass, rewrites the model in place when a
// backend serves it under another name, and passes everything else
// through byte for byte. Other components plug in with HandleClient,
// HandleAdmin, HandleRaw, AddReadiness and Do. See docs/gateway.md.
package gateway
