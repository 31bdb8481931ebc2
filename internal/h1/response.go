package h1

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is the http.ResponseWriter of one request. The body is held
// back until it outgrows the buffer, the handler flushes, or the handler
// returns: a body that fits gets a Content-Length, a longer or flushed one
// is chunked (HTTP/1.0: ends with the connection).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header // sent; the handler's own until WriteHeader
	later  http.Header // what Header returns after WriteHeader: never sent

	status        int // 0 until WriteHeader
	headerSent    bool
	chunked       bool
	closeAfter    bool
	contentLength int64 // from the handler's header, -1 if none
	written       int64
	buf           []byte // body held back while the header is unsent
	scratch       [20]byte
}

// Header is the header to send until WriteHeader; after it, a copy whose
// changes have no effect, as net/http.
func (w *response) Header() http.Header {
	if w.status == 0 {
		return w.header
	}
	if w.later == nil {
		w.later = w.header.Clone()
	}
	return w.later
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.status != 0 {
		return
	}
	if code < 200 {
		// Informational: sent at once, the real answer follows.
		w.writeStatusLine(code)
		w.writeHeaderBlock()
		w.c.bw.WriteString("\r\n")
		w.c.bw.Flush()
		return
	}
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// bodyAllowed reports whether the status may carry a body.
func (w *response) bodyAllowed() bool {
	return w.status >= 200 && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.headerSent {
		if len(w.buf)+len(p) <= bufSize {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		if err := w.sendHeader(false); err != nil {
			return 0, err
		}
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeBody writes p after the header, framed as a chunk when chunked.
func (w *response) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return err // bufio's errors are sticky: the last write reports any
}

// Flush sends the header and what is held back, and flushes.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		if err := w.sendHeader(false); err != nil {
			return err
		}
	}
	return w.c.bw.Flush()
}

// SetReadDeadline sets the connection's read deadline
// (http.ResponseController).
func (w *response) SetReadDeadline(t time.Time) error { return w.c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline
// (http.ResponseController).
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// finish completes the response after the handler returned.
func (w *response) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		if err := w.sendHeader(true); err != nil {
			return err
		}
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.contentLength >= 0 && w.written < w.contentLength && w.req.Method != http.MethodHead {
		// Shorter than announced: the client must see the connection end.
		w.closeAfter = true
	}
	return w.c.bw.Flush()
}

// sendHeader writes the status line and header, choosing the framing,
// then the body held back. final: the handler has returned, so the held
// back body is all of it.
func (w *response) sendHeader(final bool) error {
	w.headerSent = true
	h := w.header
	req := w.req
	h.Del("Transfer-Encoding")
	if v := h["Connection"]; len(v) > 0 && strings.EqualFold(v[0], "close") {
		w.closeAfter = true
	}
	if req.Close || w.c.s.shutting.Load() {
		w.closeAfter = true
	}
	switch {
	case !w.bodyAllowed():
		h.Del("Content-Length")
	case w.contentLength >= 0:
	case final && (req.Method != http.MethodHead || w.written > 0):
		w.contentLength = w.written
		h["Content-Length"] = []string{strconv.FormatInt(w.written, 10)}
	case final:
		// HEAD with nothing written: the length of a GET is unknown.
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true
	}
	if w.contentLength < 0 {
		// Set after WriteHeader through a map kept from before it: too
		// late to count.
		h.Del("Content-Length")
	}
	keepAlive10 := !req.ProtoAtLeast(1, 1) && !w.closeAfter && w.contentLength >= 0 && hasToken(req.Header["Connection"], "keep-alive")
	if !req.ProtoAtLeast(1, 1) && !keepAlive10 {
		w.closeAfter = true
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	if _, ok := h["Content-Type"]; !ok && len(w.buf) > 0 && w.bodyAllowed() && h.Get("Content-Encoding") == "" {
		h["Content-Type"] = []string{http.DetectContentType(w.buf)}
	}

	w.writeStatusLine(w.status)
	h.Del("Connection")
	w.writeHeaderBlock()
	bw := w.c.bw
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case keepAlive10:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	buf := w.buf
	w.buf = nil
	return w.writeBody(buf)
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// writeHeaderBlock writes the handler's header fields. Names that are not
// tokens are dropped, and CR and LF in values become spaces, as net/http.
func (w *response) writeHeaderBlock() {
	bw := w.c.bw
	for k, vs := range w.header {
		if !validName(k) {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header holds token.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}
