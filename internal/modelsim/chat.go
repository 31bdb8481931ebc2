package modelsim

import (
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"
)

// systemFingerprint is sent in every completion.
const systemFingerprint = "fp_modelsim"

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) error {
	s.requests.Add(1)
	ctx := r.Context()
	v := s.faults.Load()
	w.Header()["X-Modelsim-Version"] = v.versionHeader

	buf := getBuf()
	defer putBuf(buf)
	body, err := readBody(w, r, buf)
	if err != nil {
		return err
	}
	if err := s.before(ctx, v); err != nil {
		return err
	}
	c, err := decodeChat(body, s.cfg.MaxTokens)
	if err != nil {
		s.peekLimits(w)
		return err
	}
	tool, err := decodeToolTurn(body, c.seed) // tools.go
	if err != nil {
		return err
	}
	if err := s.admit(w, v, c.promptTokens+c.n); err != nil {
		return err
	}
	id := s.ids.Add(1)
	if tool != nil {
		return s.serveToolTurn(w, r, v, c, tool, id)
	}
	if c.stream {
		return s.stream(w, r, v, c, id)
	}

	// The whole answer is due when its last token is.
	if err := sleep(ctx, s.cfg.TTFT+time.Duration(c.n-1)*s.interval); err != nil {
		return err
	}
	buf.Reset() // body is no longer needed
	b := buf.Bytes()
	b = append(b, `{"id":"`...)
	b = s.appendID(b, id)
	b = append(b, `","object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"model":`...)
	b = append(b, v.modelJSON...)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
	b = appendWords(b, c.seed, c.n)
	b = append(b, `","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"`...)
	b = append(b, finishReason(c)...)
	b = append(b, `"}],"usage":`...)
	b = appendUsage(b, c.promptTokens, c.n)
	b = append(b, `,"system_fingerprint":"`+systemFingerprint+`"}`+"\n"...)
	keep(buf, b)
	return s.writeBody(w, v, b)
}

// writeBody answers 200 with a JSON body, or, under the CutAfter fault,
// sends the headers and aborts the connection before the body.
func (s *Server) writeBody(w http.ResponseWriter, v *faultView, b []byte) error {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	if v.f.CutAfter > 0 {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Write(b)
	return nil
}

func finishReason(c chat) string {
	if c.limited {
		return "length"
	}
	return "stop"
}

func (s *Server) appendID(b []byte, id uint64) []byte {
	b = append(b, s.idPrefix...)
	return strconv.AppendUint(b, id, 36)
}

func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`...)
	return b
}

// stream answers c as server-sent events: a role chunk, one content chunk
// per token, a finish chunk, a usage chunk when asked, then [DONE]. Token i
// (0-based) is flushed at start + TTFT + i*interval; headers go with the
// first token.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, v *faultView, c chat, id uint64) error {
	ctx := r.Context()
	start := time.Now()
	if err := sleep(ctx, s.cfg.TTFT); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h["Content-Type"] = hdrEventStream
	h["Cache-Control"] = hdrNoCache
	h["X-Accel-Buffering"] = hdrNo
	w.WriteHeader(http.StatusOK)

	buf := getBuf()
	defer putBuf(buf)
	// Every chunk starts with the same prefix, ending in `"choices":[`.
	prefix := make([]byte, 0, 256)
	prefix = append(prefix, `data: {"id":"`...)
	prefix = s.appendID(prefix, id)
	prefix = append(prefix, `","object":"chat.completion.chunk","created":`...)
	prefix = strconv.AppendInt(prefix, start.Unix(), 10)
	prefix = append(prefix, `,"model":`...)
	prefix = append(prefix, v.modelJSON...)
	prefix = append(prefix, `,"system_fingerprint":"`+systemFingerprint+`","choices":[`...)
	buf.Grow(1024)
	b := buf.AvailableBuffer()

	write := func(p []byte) error {
		if _, err := w.Write(p); err != nil {
			return errClientGone
		}
		return nil
	}
	flush := func() error {
		if err := rc.Flush(); err != nil {
			return errClientGone
		}
		return nil
	}
	gone := func(sent int) error {
		s.log.LogAttrs(ctx, slog.LevelDebug, "stream client went away", slog.Int("chunks", sent))
		return errAnswered
	}

	b = append(b[:0], prefix...)
	b = append(b, `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
	if v.f.Malformed {
		b = append(b, "data: {not json\n\n"...)
	}
	if err := write(b); err != nil {
		return gone(0)
	}

	g := rng(c.seed)
	for i := range c.n {
		if i > 0 {
			if err := sleep(ctx, time.Until(start.Add(s.cfg.TTFT+time.Duration(i)*s.interval))); err != nil {
				return gone(i)
			}
		}
		b = append(b[:0], prefix...)
		b = append(b, `{"index":0,"delta":{"content":"`...)
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, g.word()...)
		b = append(b, `"},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
		if write(b) != nil || flush() != nil {
			return gone(i)
		}
		sent := i + 1
		if sent == v.f.CutAfter {
			s.log.LogAttrs(ctx, slog.LevelDebug, "stream cut (fault cut_after)", slog.Int("chunks", sent))
			panic(http.ErrAbortHandler)
		}
		if sent == v.f.StallAfter {
			<-ctx.Done()
			return gone(sent)
		}
	}

	b = append(b[:0], prefix...)
	b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	b = append(b, finishReason(c)...)
	b = append(b, `"}]}`+"\n\n"...)
	if c.includeUsage {
		b = append(b, prefix...)
		b = append(b, `],"usage":`...) // "choices":[],"usage":{...}
		b = appendUsage(b, c.promptTokens, c.n)
		b = append(b, "}\n\n"...)
	}
	if !v.f.NoDone {
		b = append(b, "data: [DONE]\n\n"...)
	}
	if write(b) != nil || flush() != nil {
		return gone(c.n)
	}
	keep(buf, b)
	return nil
}

func (s *Server) serveEmbeddings(w http.ResponseWriter, r *http.Request) error {
	s.requests.Add(1)
	ctx := r.Context()
	v := s.faults.Load()
	w.Header()["X-Modelsim-Version"] = v.versionHeader

	buf := getBuf()
	defer putBuf(buf)
	body, err := readBody(w, r, buf)
	if err != nil {
		return err
	}
	if err := s.before(ctx, v); err != nil {
		return err
	}
	e, err := decodeEmbed(body)
	if err != nil {
		s.peekLimits(w)
		return err
	}
	if err := s.admit(w, v, e.promptTokens); err != nil {
		return err
	}
	if err := sleep(ctx, s.cfg.TTFT); err != nil {
		return err
	}

	buf.Reset()
	b := buf.Bytes()
	b = append(b, `{"object":"list","data":[`...)
	vec := make([]float32, e.dims)
	var raw []byte
	for i, seed := range e.seeds {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		embedding(vec, seed)
		if e.base64 {
			raw = raw[:0]
			for _, x := range vec {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, x := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = append(b, v.modelJSON...)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(e.promptTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(e.promptTokens), 10)
	b = append(b, "}}\n"...)
	keep(buf, b)
	return s.writeBody(w, v, b)
}
