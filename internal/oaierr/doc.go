// Package oaierr is the OpenAI error shape every Understudy HTTP surface
// answers with: {"error":{"message","type","param","code"}}, param and code
// null when empty, the body ending in a newline. The gateway, the edge, the
// agents service, modelsim and the admin APIs each keep their own error type
// (they carry different fields: provider bodies, refusal headers, Retry-After)
// and build the bytes and headers here, so clients see one shape and one
// status→type mapping everywhere. Nothing here runs on a success path: an
// error body is built only when an error is answered.
package oaierr
