package modelsim

import (
	"encoding/binary"
	"math"
)

// vocab is the fixed vocabulary of answers: 64 lowercase ASCII words, so no
// token ever needs JSON escaping. Its length must stay a power of two.
var vocab = [64]string{
	"region", "failover", "replica", "primary", "standby", "journal", "epoch", "fence",
	"probe", "drill", "latency", "quorum", "witness", "promote", "drain", "route",
	"origin", "backend", "gateway", "token", "stream", "model", "version", "deploy",
	"agent", "thread", "message", "answer", "signal", "window", "budget", "target",
	"recover", "restore", "sync", "async", "commit", "apply", "lag", "evidence",
	"health", "ready", "alive", "timeout", "retry", "backoff", "cooldown", "weight",
	"priority", "capacity", "quota", "limit", "burst", "steady", "calm", "swift",
	"north", "south", "east", "west", "cloud", "edge", "core", "mesh",
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hasher is FNV-1a over 64 bits; it hashes strings without allocating.
type hasher uint64

func newHasher() hasher { return fnvOffset }

func (h *hasher) str(s string) {
	x := uint64(*h)
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= fnvPrime
	}
	*h = hasher(x)
}

func (h *hasher) bytes(s []byte) {
	x := uint64(*h)
	for _, c := range s {
		x ^= uint64(c)
		x *= fnvPrime
	}
	*h = hasher(x)
}

func (h *hasher) byte(b byte) {
	*h = hasher((uint64(*h) ^ uint64(b)) * fnvPrime)
}

func (h *hasher) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	for _, c := range b {
		h.byte(c)
	}
}

// rng is splitmix64: tiny, fast and good enough to spread words and vector
// components from a seed.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// word returns the next answer word.
func (r *rng) word() string { return vocab[r.next()>>58] }

// unit returns a number in [-1, 1).
func (r *rng) unit() float64 {
	return float64(r.next()>>11)/(1<<53)*2 - 1
}

// countWords counts maximal runs of bytes that are not ASCII whitespace
// (space, tab, newline, carriage return, vertical tab, form feed). It is the
// "token" count of prompts and embedding inputs.
func countWords[T string | []byte](s T) int {
	n := 0
	in := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			in = false
		default:
			if !in {
				n++
			}
			in = true
		}
	}
	return n
}

// appendWords appends the first n answer tokens for seed to b, space
// separated (token i > 0 is " word").
func appendWords(b []byte, seed uint64, n int) []byte {
	r := rng(seed)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, r.word()...)
	}
	return b
}

// answer returns the answer text for a prompt seed and n tokens.
func answer(seed uint64, n int) string { return string(appendWords(nil, seed, n)) }

// embedding fills v with a deterministic unit vector for seed.
func embedding(v []float32, seed uint64) {
	// Two passes over the same sequence: the norm, then the components.
	r := rng(seed)
	var sum float64
	for range v {
		x := r.unit()
		sum += x * x
	}
	norm := math.Sqrt(sum)
	if norm == 0 {
		norm = 1
	}
	r = rng(seed)
	for i := range v {
		v[i] = float32(r.unit() / norm)
	}
}
