// Package edge is the global router in front of the regional gateways: the
// Azure Front Door role.
//
// Each region of the topology is an origin with a priority and a weight.
// Active probes (package probe, Front Door semantics) decide whether an
// origin is healthy; real traffic decides faster: a connection error, an
// attempt timeout or a 5xx from an origin ejects it at once for a backoff
// that doubles on repeated failures (edge.eject_base..eject_max), and it
// serves again only at a passing probe after the backoff. Routing follows
// Front Door's order: enabled and serving, then the best priority, then (in
// latency mode) the origins within edge.additional_latency of the fastest,
// then weight. When no origin is serving, every enabled origin is tried in
// priority order (Front Door does the same).
//
// The routing decision is precomputed into an immutable plan whenever a
// probe result, an ejection or an admin change arrives, so a request only
// loads a pointer and draws a weighted random number.
//
// A request is proxied by httputil.ReverseProxy whose transport makes the
// attempts: the request body is buffered (up to edge.max_replay_body) so an
// attempt that fails before any response byte reached the client (connection
// error, no headers within edge.attempt_timeout, 5xx, 429) is replayed on the
// next origin, all within edge.request_timeout. A 429 is handed back, with
// its Retry-After, only when no other origin can serve. Attempts still
// waiting for headers from an origin that gets ejected or turns unhealthy
// are abandoned and replayed at once rather than each waiting out its own
// timeout. Streams pass through as they come; a stream that breaks after its
// first byte ends with an explicit SSE error event. Attempts to http://
// origins go through the inline HTTP/1.1 client h1.Transport, which reads
// and writes in the request's goroutine on pooled connections.
//
// Requests that touch state (conversations, responses, or a body naming
// one) go to the origin whose probe body reports role "primary" (the highest
// epoch wins); until some origin reports a role they follow normal routing.
//
// The admin API (/admin/, loopback and admin token) lists origins, enables,
// disables and reweights them under a rule that never leaves zero origins
// enabled, and streams events (SSE) for the dashboard; /metrics serves
// Prometheus metrics from the edge's own registry.
package edge
