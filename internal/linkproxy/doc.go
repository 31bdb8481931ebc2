// Package linkproxy is a user-space TCP proxy that stands for a network link
// between two components, so drills can slow or cut that link without root,
// in the spirit of toxiproxy's toxics.
//
// Every accepted connection is paired with one upstream connection. Each
// direction is a reader goroutine and a writer goroutine joined by a bounded
// queue of chunks. The reader stamps every chunk with the time it is due
// (arrival + latency ± jitter, never earlier than the chunk before it, so
// order is preserved); the writer waits for that time and writes. Chunks are
// therefore delayed in a pipeline, not one after another: a link with 20 ms
// of latency delivers a stream 20 ms late, at the sender's rate, until the
// in-flight bytes reach MaxInflight (the link's window).
//
// The link has three states. Up forwards. Cut resets every connection and
// closes new ones as soon as they are accepted, like a severed cable.
// Blackhole accepts connections and keeps them open but delivers nothing,
// like a frozen network: bytes wait in the queue (and then in the kernel's
// buffers) and are delivered intact, in order, on Restore, as TCP's
// retransmissions would deliver them once a real network came back.
//
// AdminHandler exposes the controls over HTTP for drills running in other
// processes.
package linkproxy
