// Package worker consumes snapfleet's job messages from a queue and converges EC2 to them:
// it creates the snapshot of a create job unless one carrying the job's key exists, and
// deletes the snapshot of a delete job only after re-reading live state and re-computing
// retention with its own config and clock (DESIGN.md §5, §6).
//
// Handlers are registered on a Mux by job kind. They report a Result, or an error that
// says what becomes of the message — Permanent (dead-letter with a reason), Skip (delete,
// count as skipped), Snooze (hide for a while: throttling; on the last receive but one,
// requeue with a fresh receive count, so that the queue's redrive never dead-letters a
// throttled job), or any other error (retry through the queue with backoff; on the
// queue's last receive, dead-letter with reason exhausted_retries and the error) — and the
// worker routes every outcome in one place.
//
// Jobs are admitted per account-region and kind (admit.go): a received job takes a
// concurrency slot only once the rate limiter has reserved the tokens it needs, and a
// worker holds no more of an account-region's jobs than its buckets can start soon.
package worker

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/queue"
)

// Queue is the part of queue.Queue the worker uses.
type Queue interface {
	Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error)
	Delete(ctx context.Context, msgs []queue.Message) error
	SetVisibility(ctx context.Context, m queue.Message, d time.Duration) error
	Requeue(ctx context.Context, m queue.Message, d time.Duration) error
	MaxReceive(ctx context.Context) (int, error)
	DeadLetter(ctx context.Context, m queue.Message, reason, lastErr string) error
	Stats(ctx context.Context) (queue.Stats, error)
}

// Worker consumes jobs from Queue until its context is cancelled, or it idles out, or
// (ExitWhenDrained) the queue is empty.
type Worker struct {
	Queue  Queue
	Config *config.Config
	// EC2 returns the client for an account and region.
	EC2 func(account, region string) EC2
	// SSM returns the SSM client for an account and region: the hooks of consistency:
	// application (hooks.go). Nil: such jobs fail.
	SSM func(account, region string) SSM
	// KnownAccount reports whether the worker may act in an account: the caller's own or
	// one in the config whose credentials are its own (cloud.Clients.Known); a
	// *cloud.ForeignAccountError refuses the job (refused_foreign_account).
	KnownAccount func(ctx context.Context, account string) (bool, error)
	// Now is the clock of retention re-checks and snapshot tags; nil means time.Now.
	Now func() time.Time
	// AWSNow, when set, is AWS's clock for an account-region (cloud.Clients.AWSNow: the
	// Date of its latest EC2 response). A delete whose account-region's AWS clock is
	// unknown or more than MaxClockSkew from Now is snoozed (clock_skew) before retention
	// is re-checked: nothing is deleted or refused on a wrong clock. Nil turns the guard
	// off (--allow-clock-skew: tests and replays that move Now on purpose).
	AWSNow func(account, region string) (time.Time, bool)
	// KMS, when set, returns the KMS client of an account and region: a cross-account
	// copy asks it whether the source's key is AWS-managed (which cannot be shared).
	KMS func(account, region string) KMS
	// Concurrency is how many jobs run at once; default 4.
	Concurrency int
	// Limiter, when set, is the rate limiter of the EC2 clients (cloud.Clients.Limiter):
	// the worker reserves a job's tokens before the job takes a slot, so that slots go to
	// account-regions whose buckets have tokens (admission), and holds back no more of an
	// account-region's jobs than its bucket can start soon; and coalesced snapshot
	// lookups wait on it for their DescribeSnapshots token, gathering the lookups of other jobs
	// meanwhile (HandleBatch uses it for that alone).
	Limiter *limit.Limiter
	// Visibility is the queue's visibility timeout; a running job's message is extended
	// by this much every Visibility/2. Default 30s.
	Visibility time.Duration
	// IdleExit, when > 0, ends Run once the queue has been empty this long: nothing to
	// receive and, by the queue's count, no message in flight or delayed anywhere.
	IdleExit time.Duration
	// ExitWhenDrained ends Run once the queue holds nothing (visible, in flight or
	// delayed) and no job is running.
	ExitWhenDrained bool
	// ShutdownGrace is how long in-flight jobs may finish after ctx is cancelled before
	// their messages are released; default 20s.
	ShutdownGrace time.Duration
	Log           zerolog.Logger
	// Observe, when set, is told of every receive and every settled message (metrics,
	// health probes). It is called from the worker's goroutines and must not block.
	Observe func(Observation)
	// Audit, when set, is given the audit record of every job settled to a change or a
	// refusal (Auditor).
	Audit Auditor
	// Drill, when set, handles volume.drill jobs (drill.go); without it they are
	// dead-lettered as invalid_message.
	Drill *Drill

	// handler replaces the snapshot handlers (tests).
	handler Handler
	// backoff replaces defaultBackoff (tests).
	backoff *backoff
	// drainPoll replaces the receive wait of ExitWhenDrained (tests).
	drainPoll time.Duration
	// forceWait replaces the const forceWait (tests).
	forceWait time.Duration
	// retryDelay replaces the func retryDelay (tests).
	retryDelay func(attempts int) time.Duration
	// lockTTL replaces the const lockTTL (tests).
	lockTTL time.Duration
}

// Stats counts what a Run did. Processed counts every message handled to an outcome
// (messages handed back unprocessed at shutdown are not counted); Created and Deleted
// count snapshots actually created and deleted, not those found done already.
type Stats struct {
	Processed int `json:"processed"`
	Created   int `json:"created"`
	Deleted   int `json:"deleted"`
	Skipped   int `json:"skipped"`
	Retried   int `json:"retried"`
	// Deferred counts messages handed back unstarted because their account-region's
	// bucket could not start them soon (not attempts of the job).
	Deferred     int `json:"deferred"`
	DeadLettered int `json:"dead_lettered"`
	// Fallbacks counts application-consistent jobs whose pre hook failed and whose
	// snapshots are crash-consistent; PostFailures those whose post hook failed (hooks.go).
	Fallbacks    int `json:"fallbacks"`
	PostFailures int `json:"post_failures"`
}

const (
	// maxBatch is the most messages one Receive may ask for.
	maxBatch = 10
	// maxLongPoll is SQS's longest receive wait.
	maxLongPoll = 20 * time.Second
	// emptyCounts is how many counts in a row, each after an empty receive, must find
	// the queue empty before the worker exits for it.
	emptyCounts = 2
	// drainPoll is the receive wait when the worker must notice an empty queue quickly.
	drainPoll = time.Second
	// retryBase and retryCap bound the visibility backoff of retried and snoozed jobs.
	retryBase = 5 * time.Second
	retryCap  = 15 * time.Minute
	// queueOpTimeout bounds one queue call made while settling or releasing.
	queueOpTimeout = 30 * time.Second
	// forceWait is how long cancelled jobs may take to return after ShutdownGrace.
	forceWait = 5 * time.Second
	// maxReceiveErrors consecutive receive failures end Run with an error.
	maxReceiveErrors = 10
	// heldPerSlot: the worker holds up to this many received messages per slot (running
	// or waiting for admission), so that it sees jobs of many account-regions at once.
	heldPerSlot = 32
	// holdAhead: of one account-region's jobs of a kind, the worker holds (beyond those
	// running) what its buckets can start within this long; it defers the others.
	holdAhead = 2 * time.Second
	// admitAhead: the job at the head of a line may reserve tokens due this far ahead;
	// it starts admitWait before the last is due (and waits that long in its slot at most).
	admitAhead = time.Second
	admitWait  = 50 * time.Millisecond
	// heldPoll bounds the receive wait while messages are held: at shutdown they are
	// released only once the last receive's wait is over at the queue (see releaseHeld).
	heldPoll = time.Second
	// runningPoll bounds it while jobs run (and nothing is held), for the same reason:
	// a shutdown waits for it before it releases their messages.
	runningPoll = 5 * time.Second
	// minDefer is the shortest a deferred message is hidden, so that it does not come
	// straight back while nothing has changed.
	minDefer = 500 * time.Millisecond
)

// Run consumes jobs until ctx is cancelled (SIGINT/SIGTERM), the queue has been idle for
// IdleExit, or, with ExitWhenDrained, the queue is empty. On cancellation it stops
// receiving, lets running jobs finish within ShutdownGrace, releases the rest and returns
// the stats with a nil error. An error is returned only for a misconfigured Worker or a
// queue that keeps failing.
func (w *Worker) Run(ctx context.Context) (Stats, error) {
	r, err := w.newRunner(ctx)
	if err != nil {
		return Stats{}, err
	}
	defer r.stopJob()
	stopDispatch := make(chan struct{})
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); r.dispatch(stopDispatch) }()
	loopErr := r.loop(ctx)
	close(stopDispatch)
	<-dispatched
	r.releaseHeld()
	r.drain()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info().Int("processed", r.stats.Processed).Int("created", r.stats.Created).
		Int("deleted", r.stats.Deleted).Int("skipped", r.stats.Skipped).Int("retried", r.stats.Retried).
		Int("deferred", r.stats.Deferred).Int("dead_lettered", r.stats.DeadLettered).
		Int("fallbacks", r.stats.Fallbacks).Int("post_failures", r.stats.PostFailures).Msg("worker stopped")
	return r.stats, loopErr
}

func (w *Worker) newRunner(ctx context.Context) (*runner, error) {
	switch {
	case w.Queue == nil:
		return nil, errors.New("worker: Queue is nil")
	case w.Config == nil:
		return nil, errors.New("worker: Config is nil")
	case w.KnownAccount == nil:
		return nil, errors.New("worker: KnownAccount is nil")
	case w.EC2 == nil && w.handler == nil:
		return nil, errors.New("worker: EC2 is nil")
	}
	conc := w.Concurrency
	if conc <= 0 {
		conc = 4
	}
	vis := w.Visibility
	if vis <= 0 {
		vis = 30 * time.Second
	}
	h := w.handler
	if h == nil {
		now := w.Now
		if now == nil {
			now = time.Now
		}
		b := defaultBackoff
		if w.backoff != nil {
			b = *w.backoff
		}
		s := &snapshots{cfg: w.Config, ec2: w.EC2, now: now, backoff: b, locks: lockCache{ttl: w.lockTTL}, lim: w.Limiter, awsNow: w.AWSNow, kms: w.KMS, known: w.KnownAccount,
			ssm: w.SSM, logger: w.Log}
		m := s.mux()
		if w.Drill != nil {
			w.Drill.register(m, s)
		}
		h = m
	}
	qctx := context.WithoutCancel(ctx)
	jobCtx, stop := context.WithCancel(qctx)
	return &runner{
		w: w, h: h, log: w.Log, vis: vis,
		slots:   make(chan struct{}, conc),
		room:    make(chan struct{}, conc*heldPerSlot),
		wake:    make(chan struct{}, 1),
		started: make(chan struct{}, 1),
		qctx:    qctx, jobCtx: jobCtx, stopJob: stop,
		inflight: map[string]queue.Message{},
		keys:     map[string]int{},
		backlog:  newBacklog(),
	}, nil
}
