package replication

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/understudy/understudy/internal/store"
)

// Receiver is what the Handler needs of the local store.
type Receiver interface {
	Meta(ctx context.Context) (store.Meta, error)
	ApplyEvents(ctx context.Context, events []store.Event) (store.Position, error)
	Fence(ctx context.Context, epoch int64) error
	Rejoin(ctx context.Context, history []store.EpochStart) (store.RejoinReport, error)
	NotePrimary(ctx context.Context, name string, epoch int64) error
}

// HandlerOptions tune the Handler. The zero value is usable.
type HandlerOptions struct {
	// MaxBodyBytes bounds a batch body. Default 16 MiB.
	MaxBodyBytes int64
}

// Handler is the receiving side of replication, an http.Handler the
// gateway mounts under /replication/:
//
//	POST /replication/events    apply a Batch, answer an Ack
//	GET  /replication/position  answer an Ack with the current position
//
// Both require "Authorization: Bearer <secret>". A batch of an older epoch
// than the store's is refused with 409 and the store's epoch. A batch of a
// newer epoch makes the store adopt it first: a former primary fences
// itself, and Rejoin quarantines the events the new primary never
// received; then the events are applied.
type Handler struct {
	st      Receiver
	secret  [sha256.Size]byte
	maxBody int64
	log     *slog.Logger
	mux     *http.ServeMux
	mu      sync.Mutex // one batch at a time: fence, rejoin and apply never interleave
}

// NewHandler returns the handler for st. secret must not be empty.
func NewHandler(st Receiver, secret string, opts HandlerOptions, log *slog.Logger) (*Handler, error) {
	if secret == "" {
		return nil, errors.New("replication handler: empty secret")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{st: st, secret: sha256.Sum256([]byte(secret)), maxBody: opts.MaxBodyBytes, log: log, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST "+PathEvents, h.events)
	h.mux.HandleFunc("GET "+PathPosition, h.position)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="replication"`)
		writeAck(w, http.StatusUnauthorized, Ack{Code: CodeUnauthorized, Error: "missing or wrong replication secret"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized compares SHA-256 digests in constant time, so neither the
// secret's bytes nor its length leak through timing.
func (h *Handler) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], h.secret[:]) == 1 && ok
}

func (h *Handler) position(w http.ResponseWriter, r *http.Request) {
	ack, err := h.ack(r.Context())
	if err != nil {
		h.log.Error("replication position", "err", err)
		writeAck(w, http.StatusInternalServerError, Ack{Code: CodeInternal, Error: "store unavailable"})
		return
	}
	writeAck(w, http.StatusOK, ack)
}

func (h *Handler) ack(ctx context.Context) (Ack, error) {
	m, err := h.st.Meta(ctx)
	if err != nil {
		return Ack{}, err
	}
	return ackOf(m), nil
}

func ackOf(m store.Meta) Ack {
	return Ack{Role: m.Role, Epoch: m.Epoch, Epochs: m.History, Position: m.Position}
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	// A fence, rejoin or apply that started finishes even if the sender
	// gives up waiting (a long rejoin rebuild must not be undone by the
	// sender's request timeout); the sender's retry then finds it done.
	ctx := context.WithoutCancel(r.Context())
	b, err := DecodeBatch(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeAck(w, http.StatusRequestEntityTooLarge, Ack{Code: CodeTooLarge, Error: fmt.Sprintf("batch over %d bytes", h.maxBody)})
			return
		}
		writeAck(w, http.StatusBadRequest, Ack{Code: CodeInvalid, Error: err.Error()})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	status, ack, err := h.apply(ctx, b)
	if err != nil && status >= 500 {
		h.log.Error("replication batch", "epoch", b.Epoch, "err", err)
	} else if err != nil {
		h.log.Warn("replication batch refused", "epoch", b.Epoch, "code", ack.Code, "err", err)
	}
	writeAck(w, status, ack)
}

// apply handles one decoded batch and returns the status and ack to send.
func (h *Handler) apply(ctx context.Context, b Batch) (int, Ack, error) {
	m, err := h.st.Meta(ctx)
	if err != nil {
		return http.StatusInternalServerError, Ack{Code: CodeInternal, Error: "store unavailable"}, err
	}
	cur := ackOf(m)
	refuse := func(status int, code string, err error) (int, Ack, error) {
		a := cur
		if now, aerr := h.ack(ctx); aerr == nil {
			a = now
		}
		a.Code, a.Error = code, err.Error()
		if status >= 500 {
			a.Error = "store failed"
		}
		return status, a, err
	}
	switch {
	case b.Epoch < cur.Epoch:
		return refuse(http.StatusConflict, CodeStaleEpoch, &store.EpochError{Store: cur.Epoch, Got: b.Epoch})
	case b.Epoch == cur.Epoch && cur.Role != store.RoleStandby:
		return refuse(http.StatusConflict, CodeConflict, fmt.Errorf("receiver is %s of epoch %d, the sender's epoch", cur.Role, cur.Epoch))
	}
	var rejoined *store.RejoinReport
	if b.Epoch > cur.Epoch {
		if cur.Role == store.RolePrimary {
			// A newer primary exists: stop writing before anything else.
			if err := h.st.Fence(ctx, b.Epoch); err != nil {
				return refuse(statusOf(err))
			}
			h.log.Warn("fenced: a newer epoch is shipping to this store", "epoch", cur.Epoch, "new_epoch", b.Epoch, "primary", b.From)
		}
		rep, err := h.st.Rejoin(ctx, b.Epochs)
		if err != nil {
			return refuse(statusOf(err))
		}
		if cur.Role != store.RoleStandby || rep.Quarantined > 0 {
			rejoined = &rep
			h.log.Warn("rejoined as standby", "epoch", b.Epoch, "fork_seq", rep.ForkSeq, "quarantined", rep.Quarantined)
		}
	}
	// Every batch of an epoch names the same sender: note it once, not in
	// a write transaction per batch (the sync path waits on this one).
	if b.From != "" && (b.From != m.KnownPrimary || b.Epoch != m.KnownEpoch) {
		if err := h.st.NotePrimary(ctx, b.From, b.Epoch); err != nil {
			return refuse(statusOf(err))
		}
	}
	pos, err := h.st.ApplyEvents(ctx, b.Events)
	if err != nil {
		status, code, err := statusOf(err)
		st, a, err := refuse(status, code, err)
		a.Rejoined = rejoined
		return st, a, err
	}
	a := cur
	if b.Epoch == cur.Epoch {
		// Same epoch: only the position moved (events never carry an
		// epoch newer than their batch's).
		a.Position = pos
	} else if a, err = h.ack(ctx); err != nil {
		return http.StatusInternalServerError, Ack{Code: CodeInternal, Error: "store unavailable"}, err
	}
	a.Rejoined = rejoined
	return http.StatusOK, a, nil
}

// statusOf maps a store error to an HTTP status and ack code.
func statusOf(err error) (int, string, error) {
	switch {
	case errors.Is(err, store.ErrStaleEpoch):
		return http.StatusConflict, CodeStaleEpoch, err
	case errors.Is(err, store.ErrGap):
		return http.StatusConflict, CodeGap, err
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, CodeConflict, err
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, CodeInvalid, err
	}
	return http.StatusInternalServerError, CodeInternal, err
}

func writeAck(w http.ResponseWriter, status int, a Ack) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(a)
}
