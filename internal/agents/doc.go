// Package agents keeps agents as code and runs their turns.
//
// A Definition is one file under the topology's agents directory (YAML or
// JSON): name, model deployment, instructions, function tools and
// metadata.version. Definitions are validated (errors name the file and
// field) and content-hashed over their canonical JSON, so the same agent
// written in YAML or JSON, in any key order, has one hash, and drift checks
// compare regions by hash. Clients refer to agents by name, so recreating an
// agent in another region changes nothing a client holds.
//
// Service is the runtime: the OpenAI Responses and Conversations APIs over
// a region's store and the gateway's backend pool (Completer). A turn loads
// the prior items (the conversation's, or the previous_response_id chain),
// translates them to one chat-completions request, translates the answer
// back to output items (messages, function calls the client runs), and
// stores the input items, the output items and the response in ONE store
// write; AfterWrite (sync replication) must acknowledge that write before
// the client sees the answer, and a stream sends response.completed only
// after it. A standby serves reads and refuses writes (503 not_primary,
// naming the primary) before running the model. An Idempotency-Key makes a
// repeated turn return the stored response: concurrent duplicates queue on
// a per-key lock so one runs the model, and the store's unique key is the
// backstop across processes. See docs/agents.md.
package agents
