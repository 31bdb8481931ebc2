// Package modelsim is an OpenAI-compatible model server for demos, tests and
// benchmarks. It is a real HTTP server that a gateway uses exactly like vLLM
// or Azure OpenAI: chat completions (streaming and not), embeddings and the
// model list, on both the OpenAI paths (/v1/...) and the Azure OpenAI paths
// (/openai/deployments/{deployment}/..., /openai/v1/...).
//
// Output is a pure function of the input: the words of an answer come from a
// small fixed vocabulary driven by a hash of the roles and contents of the
// messages, so the same request always yields the same text, and a shorter
// answer is a prefix of a longer one. Embeddings are unit vectors derived the
// same way from each input.
//
// Latency follows a profile (time to first token, then one token every
// 1/TokensPerSecond), always computed from the start of generation so pacing
// does not drift, and every wait honours request cancellation. Faults
// (errors, 429s, hangs, cut or stalled streams, another reported version) are
// a product feature set at run time through /admin/faults or SetFaults.
// Fractional faults are deterministic, not random: the n-th request that
// reaches a fault's check fails when floor(n*rate) > floor((n-1)*rate).
//
// The hot path (a non-streaming completion with no latency configured) takes
// no lock, starts no timer and builds its answer in a pooled buffer.
package modelsim
