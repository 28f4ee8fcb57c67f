package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// Action says what a successful handler did, so that a redelivered job that found its
// work already done is told apart from one that did it.
type Action string

// Actions of the snapshot handlers.
const (
	// Created: CreateSnapshot was called and returned a snapshot.
	Created Action = "created"
	// Existed: a snapshot carrying the job's key was already there; nothing was created.
	Existed Action = "existed"
	// Deleted: DeleteSnapshot was called and succeeded.
	Deleted Action = "deleted"
	// Gone: the snapshot to delete no longer exists; nothing was deleted.
	Gone Action = "gone"
)

// Result is what a handler did when it succeeded.
type Result struct {
	Action Action
	// Snapshot is the snapshot created, found, deleted or found gone.
	Snapshot string
	// Reason, when set, says why the handler acted (a reason code: due, event, expired,
	// duplicate), for the audit trail.
	Reason string
	// Snapshots, when the handler made several (an instance's CreateSnapshots), are all of
	// them, Snapshot first: the audit trail has a record for each.
	Snapshots []string
	// Fallback: consistency: application, but the pre hook failed and the snapshots are
	// crash-consistent; PostFailed: the post hook failed. Set on errors too.
	Fallback, PostFailed bool
}

// Handler converges the world to one job. It returns the Result of a success, or an error
// that says what to do with the message: Permanent, Skip, Snooze, or any other error for a
// retryable failure.
type Handler interface {
	Handle(ctx context.Context, j job.Job) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, j job.Job) (Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, j job.Job) (Result, error) { return f(ctx, j) }

// Mux routes a job to the handler registered for its kind. It is itself a Handler.
type Mux struct {
	handlers map[string]Handler
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: map[string]Handler{}} }

// Register routes jobs of kind to h. Registering a kind twice panics.
func (m *Mux) Register(kind string, h Handler) {
	if _, ok := m.handlers[kind]; ok {
		panic(fmt.Sprintf("worker: kind %q registered twice", kind))
	}
	m.handlers[kind] = h
}

// RegisterFunc routes jobs of kind to f.
func (m *Mux) RegisterFunc(kind string, f func(context.Context, job.Job) (Result, error)) {
	m.Register(kind, HandlerFunc(f))
}

// Handle dispatches j to the handler of its kind; a kind with no handler is a permanent
// invalid_message failure.
func (m *Mux) Handle(ctx context.Context, j job.Job) (Result, error) {
	h, ok := m.handlers[j.Kind]
	if !ok {
		return Result{}, Permanent(reason.InvalidMessage, fmt.Errorf("no handler for kind %q", j.Kind))
	}
	return h.Handle(ctx, j)
}

// PermanentError is a failure that no retry can fix: the message is dead-lettered with
// Reason.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a permanent failure: the message goes to the dead-letter queue
// with reason.
func Permanent(reason string, err error) error { return &PermanentError{Reason: reason, Err: err} }

// SkipError means the job cannot and need not be done (the volume is gone, the snapshot is
// protected by another tool): the message is deleted and the job counted as skipped.
type SkipError struct {
	Reason string
	Err    error
}

func (e *SkipError) Error() string {
	if e.Err == nil {
		return "skipped: " + e.Reason
	}
	return "skipped: " + e.Reason + ": " + e.Err.Error()
}

func (e *SkipError) Unwrap() error { return e.Err }

// Skip ends a job without doing it, for reason; the message is deleted.
func Skip(reason string) error { return &SkipError{Reason: reason} }

// skipErr is Skip with the error that led to it, for the log.
func skipErr(reason string, err error) error { return &SkipError{Reason: reason, Err: err} }

// SnoozeError puts the job back on the queue for Delay without counting it as a failure
// of the worker or the job: throttling, a skewed clock. A snoozed job is never
// dead-lettered by the worker.
type SnoozeError struct {
	Delay time.Duration
	// Reason, when set, names why in the log (e.g. clock_skew); throttling has none.
	Reason string
	Err    error
}

func (e *SnoozeError) Error() string {
	return fmt.Sprintf("snoozed for %s: %v", e.Delay, e.Err)
}

func (e *SnoozeError) Unwrap() error { return e.Err }

// Snooze releases the message to the queue again after d.
func Snooze(d time.Duration, err error) error { return &SnoozeError{Delay: d, Err: err} }

// snoozeFor is Snooze with a reason.
func snoozeFor(reason string, d time.Duration, err error) error {
	return &SnoozeError{Delay: d, Reason: reason, Err: err}
}

// outcome is how the worker settles a message; decided in one place, outcomeOf.
type outcome int

const (
	outSuccess outcome = iota
	outSkip
	outDeadLetter
	outSnooze
	outRetry
	outRelease // shutdown: hand back at once, not an attempt of the job
)

var outcomeNames = [...]string{"success", "skipped", "dead_lettered", "snoozed", "retry", "released"}

func (o outcome) String() string { return outcomeNames[o] }

// outcomeOf classifies a handler's error; reason is the dead-letter or skip reason and
// delay the snooze.
func outcomeOf(err error) (o outcome, reason string, delay time.Duration) {
	var (
		perm   *PermanentError
		skip   *SkipError
		snooze *SnoozeError
	)
	switch {
	case err == nil:
		return outSuccess, "", 0
	case errors.As(err, &perm):
		return outDeadLetter, perm.Reason, 0
	case errors.As(err, &skip):
		return outSkip, skip.Reason, 0
	case errors.As(err, &snooze):
		return outSnooze, snooze.Reason, snooze.Delay
	default:
		return outRetry, "", 0
	}
}
