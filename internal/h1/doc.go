// Package h1 is the HTTP/1.1 server of the gateway's and the edge's client
// listeners, and the HTTP/1.1 client with which they reach their upstreams:
// the request path of a proxy, where every wake-up of a thread shows in the
// added latency.
//
// One goroutine per connection reads a request, runs the handler and
// writes the answer, with nothing else scheduled per request. net/http's
// server does more: once a request body is read it starts a goroutine that
// reads ahead on the connection to notice a client that went away, and
// stops it at the end of every request by forcing a timeout, two extra
// wake-ups per request that cost 50 µs at p50 and more at p99 on two
// shared cores (docs/PERFORMANCE.md). Here that watch starts only once a
// handler has run for WatchAfter with its body read, so a long model call
// is still cancelled when its client leaves, and a quick answer pays
// nothing.
//
// Server mirrors the parts of http.Server the components use
// (ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout,
// MaxHeaderBytes, BaseContext, Serve, Shutdown, Close) and hands handlers a
// standard http.ResponseWriter that supports http.ResponseController's
// Flush, SetReadDeadline and SetWriteDeadline. Responses that fit the
// 4 KiB write buffer get a Content-Length; longer or flushed ones are
// chunked. Requests are parsed by http.ReadRequest. Not supported:
// HTTP/2, TLS (the listeners are plain; TLS terminates at Front Door or the
// load balancer), Hijack, trailers.
//
// Both sides read and write TCP connections with raw system calls through
// the poller (rawio_linux.go), so the scheduler never hands a P to another
// thread in the middle of a socket write.
//
// Transport is the client side, an http.RoundTripper for plain-HTTP
// upstreams: the calling goroutine writes the request and reads the answer
// on a pooled keep-alive connection, where http.Transport hands every round
// trip to a writer and a reader goroutine. A pooled connection the upstream
// closed while idle is retried once on a fresh one, only when nothing at
// all was read and the body can be replayed. HTTPS, proxied URLs and
// Upgrade requests go to a standard http.Transport.
package h1
