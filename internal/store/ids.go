package store

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// ID prefixes, as the OpenAI API spells them.
const (
	PrefixConversation       = "conv_"
	PrefixResponse           = "resp_"
	PrefixMessage            = "msg_"
	PrefixFunctionCall       = "fc_"
	PrefixFunctionCallOutput = "fco_"
)

// NewID returns prefix followed by 48 random hex digits, the shape of
// OpenAI IDs ("conv_68a1…").
func NewID(prefix string) string {
	var b [24]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return prefix + hex.EncodeToString(b[:])
}

// itemPrefix returns the ID prefix for an item type.
func itemPrefix(typ string) string {
	switch typ {
	case ItemFunctionCall:
		return PrefixFunctionCall
	case ItemFunctionCallOutput:
		return PrefixFunctionCallOutput
	default:
		return PrefixMessage
	}
}

// Timestamps are kept with microsecond precision: what a SQL column holds
// exactly, so a value survives store → journal → standby unchanged.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func truncate(t time.Time) time.Time { return fromMicros(micros(t)) }
