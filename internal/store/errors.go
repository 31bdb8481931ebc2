package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is; the typed errors below carry
// details and match their sentinel.
var (
	// ErrNotPrimary: a write reached a store that is not primary.
	ErrNotPrimary = errors.New("store is not primary")
	// ErrStaleEpoch: an epoch older than (or, for writes, different from)
	// the store's.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrNotFound: no such conversation, item, response or agent version.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an idempotency key reused with another body, an ID
	// that already exists, an agent version applied with another hash, or
	// an operation the store's role does not allow (rejoin a primary,
	// apply events on a primary).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the arguments are malformed (limits, IDs, JSON).
	ErrInvalid = errors.New("invalid argument")
	// ErrGap: ApplyEvents received an event that does not follow the last
	// applied one.
	ErrGap = errors.New("journal gap")
	// ErrGuard wraps an error returned by the guard hook; the transaction
	// was rolled back.
	ErrGuard = errors.New("write guard refused")
)

// NotPrimaryError is ErrNotPrimary with what the store knows.
type NotPrimaryError struct {
	Role  Role
	Epoch int64
	// KnownEpoch and KnownPrimary name the newest primary this store heard
	// of, if any.
	KnownEpoch   int64
	KnownPrimary string
}

func (e *NotPrimaryError) Error() string {
	s := fmt.Sprintf("store is %s at epoch %d, not primary", e.Role, e.Epoch)
	if e.KnownEpoch > e.Epoch || e.KnownPrimary != "" {
		s += fmt.Sprintf(" (known primary %q at epoch %d)", e.KnownPrimary, e.KnownEpoch)
	}
	return s
}

// Is makes errors.Is(err, ErrNotPrimary) true.
func (e *NotPrimaryError) Is(target error) bool { return target == ErrNotPrimary }

// EpochError is ErrStaleEpoch with both epochs.
type EpochError struct {
	// Store is the store's epoch, Got the one presented.
	Store, Got int64
}

func (e *EpochError) Error() string {
	return fmt.Sprintf("stale epoch: store is at epoch %d, got %d", e.Store, e.Got)
}

// Is makes errors.Is(err, ErrStaleEpoch) true.
func (e *EpochError) Is(target error) bool { return target == ErrStaleEpoch }

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func conflictf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, a...))
}

func notFoundf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrNotFound, fmt.Sprintf(format, a...))
}
