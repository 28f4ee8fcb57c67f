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
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
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
	// Concurrency is how many jobs run at once; default 4.
	Concurrency int
	// Limiter, when set, is the rate limiter of the EC2 clients (cloud.Clients.Limiter):
	// the worker reserves a job's tokens before the job takes a slot, so that slots go to
	// account-regions whose buckets have tokens (admission), and holds back no more of an
	// account-region's jobs than its bucket can start soon; and coalesced snapshot
	// lookups wait on it for their Describe token, gathering the lookups of other jobs
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
	heldPerSlot = 16
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
	// minDefer is the shortest a deferred message is hidden, so that it does not come
	// straight back while nothing has changed.
	minDefer = 500 * time.Millisecond
)

// runner is the state of one Run.
type runner struct {
	w       *Worker
	h       Handler
	log     zerolog.Logger
	vis     time.Duration
	slots   chan struct{}   // running jobs
	room    chan struct{}   // received messages: held for admission, running, being deferred
	wake    chan struct{}   // a message was held or a slot freed: the dispatcher looks again
	started chan struct{}   // a held message was started: the receive loop looks again
	qctx    context.Context // queue calls: outlives the caller's cancellation
	jobCtx  context.Context // handlers: cancelled only when ShutdownGrace runs out
	stopJob context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	stats    Stats
	inflight map[string]queue.Message // by receipt; removed once settled or released
	backlog  backlog                  // received, not yet started
	// pollEnd is when the last receive's wait ends at the queue: a receive cancelled on
	// our side may still take messages there until then.
	pollEnd time.Time
}

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
		Int("deferred", r.stats.Deferred).Int("dead_lettered", r.stats.DeadLettered).Msg("worker stopped")
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
		h = (&snapshots{cfg: w.Config, ec2: w.EC2, now: now, backoff: b, locks: lockCache{ttl: w.lockTTL}, lim: w.Limiter, awsNow: w.AWSNow}).mux()
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
		backlog:  newBacklog(),
	}, nil
}

// receiveWait is how long one Receive may wait for messages.
func (r *runner) receiveWait() time.Duration {
	if r.heldCount() > 0 {
		return min(r.baseReceiveWait(), heldPoll)
	}
	return r.baseReceiveWait()
}

func (r *runner) baseReceiveWait() time.Duration {
	switch {
	case r.w.ExitWhenDrained && r.w.drainPoll > 0:
		return r.w.drainPoll
	case r.w.ExitWhenDrained:
		return drainPoll
	case r.w.IdleExit > 0:
		return min(max(r.w.IdleExit/2, 10*time.Millisecond), maxLongPoll)
	default:
		return maxLongPoll
	}
}

// loop receives messages while there is room to hold them and hands each to the
// dispatcher (hold), until it is time to stop.
func (r *runner) loop(ctx context.Context) error {
	lastBusy := time.Now()
	failures := 0
	empty := 0 // counts in a row that found the queue empty
	for ctx.Err() == nil {
		// Hold no more than the slots can start soon; take room for one message, waiting
		// for it, then for any others free now: never receive more than can be held.
		for r.heldFull() {
			select {
			case <-r.started:
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case r.room <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		if ctx.Err() != nil { // select picks at random when both are ready
			<-r.room
			return nil
		}
		n := 1
	more:
		for n < min(cap(r.room), maxBatch) {
			select {
			case r.room <- struct{}{}:
				n++
			default:
				break more
			}
		}
		wait := r.receiveWait()
		r.mu.Lock()
		r.pollEnd = time.Now().Add(wait)
		r.mu.Unlock()
		msgs, err := r.w.Queue.Receive(ctx, n, wait)
		r.observe(Observation{Polled: true, Received: len(msgs), Err: err})
		for range n - len(msgs) {
			<-r.room
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			r.log.Warn().Err(err).Int("failures", failures).Msg("receiving jobs")
			if failures >= maxReceiveErrors {
				return fmt.Errorf("receiving jobs: %d failures in a row: %w", failures, err)
			}
			sleep(ctx, min(time.Duration(1<<min(failures, 5))*time.Second, 30*time.Second))
			continue
		}
		failures = 0
		for _, m := range msgs {
			r.hold(m)
		}
		if len(msgs) > 0 || r.running() > 0 {
			lastBusy = time.Now()
			empty = 0
			continue
		}
		idle := r.w.IdleExit > 0 && time.Since(lastBusy) >= r.w.IdleExit
		if !idle && !r.w.ExitWhenDrained {
			continue
		}
		// Nothing visible is not empty: messages held by other workers, or hidden for a
		// back-off, still count. A worker exits only when the queue holds nothing at all.
		if !r.queueEmpty(ctx) {
			if idle {
				lastBusy = time.Now()
			}
			empty = 0
			continue
		}
		// SQS's counts are approximate, each read at its own instant: a message whose
		// hiding ends between the reads of "visible" and "not visible" is in neither. The
		// queue is empty when a second count, after one more receive, agrees.
		if empty++; empty < emptyCounts {
			continue
		}
		if idle {
			r.log.Info().Dur("idle", time.Since(lastBusy)).Msg("queue empty, exiting")
		} else {
			r.log.Info().Msg("queue drained, exiting")
		}
		return nil
	}
	return nil
}

// queueEmpty reports whether the queue holds no message at all (visible, in flight or
// delayed) and this worker runs no job; a failed count is not empty.
func (r *runner) queueEmpty(ctx context.Context) bool {
	st, err := r.w.Queue.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("counting the queue's messages")
		}
		return false
	}
	return st.Total() == 0 && r.running() == 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *runner) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inflight)
}

// start runs the job of h in its own goroutine, under ctx (which carries its admitted
// tokens; release hands back those it did not use); h's slot is already taken.
func (r *runner) start(h *held, ctx context.Context, release func()) {
	r.wg.Add(1)
	go func() {
		defer func() {
			<-r.slots
			<-r.room
			r.poke()
			r.wg.Done()
		}()
		began := time.Now()
		j, res, err := r.handle(ctx, h.m)
		release()
		h.stop()
		r.ran(time.Since(began))
		r.settle(h.m, j, res, err, time.Since(began))
	}()
}

// drain waits for running jobs up to ShutdownGrace, then cancels them and, after a short
// wait, releases the messages of any job that still has not returned.
func (r *runner) drain() {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	grace := r.w.ShutdownGrace
	if grace <= 0 {
		grace = 20 * time.Second
	}
	if n := r.running(); n > 0 {
		r.log.Info().Int("running", n).Dur("grace", grace).Msg("waiting for running jobs")
	}
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	r.log.Warn().Int("running", r.running()).Msg("shutdown grace over, cancelling running jobs")
	r.stopJob()
	wait := forceWait
	if r.w.forceWait > 0 {
		wait = r.w.forceWait
	}
	select {
	case <-done:
		return
	case <-time.After(wait):
	}
	r.mu.Lock()
	left := make([]queue.Message, 0, len(r.inflight))
	for k, m := range r.inflight {
		left = append(left, m)
		delete(r.inflight, k)
	}
	r.mu.Unlock()
	for _, m := range left {
		r.release(m)
	}
}

// release hands m back to the queue at once.
func (r *runner) release(m queue.Message) {
	ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
	defer cancel()
	err := r.w.Queue.SetVisibility(ctx, m, 0)
	r.observe(Observation{Outcome: outRelease.String(), Err: err})
	if err != nil {
		r.log.Error().Err(err).Str("message_id", m.ID).Msg("releasing message at shutdown")
		return
	}
	r.log.Info().Str("message_id", m.ID).Msg("released message at shutdown")
}

// heartbeat extends m's visibility every Visibility/2 until stop is called.
func (r *runner) heartbeat(m queue.Message) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.vis / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
				err := r.w.Queue.SetVisibility(ctx, m, r.vis)
				cancel()
				if err != nil {
					r.log.Warn().Err(err).Str("message_id", m.ID).Msg("extending visibility")
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// handle decodes m, checks what every job must pass and runs its handler. A panic in any
// of it becomes a retryable error.
func (r *runner) handle(ctx context.Context, m queue.Message) (j job.Job, res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("message_id", m.ID).Str("stack", string(debug.Stack())).Msgf("job handler panicked: %v", p)
			res, err = Result{}, fmt.Errorf("job handler panicked: %v", p)
		}
	}()
	j, err = job.Decode(m.Body)
	if err != nil {
		return j, Result{}, Permanent(reason.InvalidMessage, err)
	}
	known, err := r.w.KnownAccount(ctx, j.Account)
	var foreign *cloud.ForeignAccountError
	switch {
	case errors.As(err, &foreign):
		return j, Result{}, Permanent(reason.RefusedForeignAccount, err)
	case err != nil:
		return j, Result{}, fail(fmt.Errorf("checking account %s: %w", j.Account, err))
	}
	if !known {
		return j, Result{}, Permanent(reason.UnknownAccount, fmt.Errorf("account %s is neither the caller's nor in the config", j.Account))
	}
	if _, err := policyOf(r.w.Config, j.Policy); err != nil {
		return j, Result{}, err
	}
	// Fairness: a job may wait for its account-region's rate limit up to a quarter of the
	// visibility timeout; beyond that it is snoozed back to the queue (limit.WaitError)
	// and its slot goes to a job of another account-region.
	res, err = r.h.Handle(limit.WithMaxWait(ctx, r.vis/4), j)
	return j, res, err
}

// retryDelay is the visibility backoff of a message received attempts times: 5s doubling
// up to 15m, with jitter.
func retryDelay(attempts int) time.Duration {
	d := retryBase << min(max(attempts-1, 0), 8)
	d = min(d, retryCap)
	return d + rand.N(d/4+1)
}

func (r *runner) retryDelay(attempts int) time.Duration {
	if r.w.retryDelay != nil {
		return r.w.retryDelay(attempts)
	}
	return retryDelay(attempts)
}

// maxReceive is the queue's redrive threshold (see queue.Queue.MaxReceive); 0 when the
// queue has none or cannot say (logged), so that the worker then leaves redrive to the
// queue.
func (r *runner) maxReceive(ctx context.Context, m queue.Message) int {
	n, err := r.w.Queue.MaxReceive(ctx)
	if err != nil {
		r.log.Warn().Err(err).Str("message_id", m.ID).Msg("reading the queue's max receive count: leaving redrive to the queue")
		return 0
	}
	return n
}

// lastReceives reports whether m has used its receives but one or none: hidden with
// SetVisibility it would come back once more at most before the queue moved it to the
// dead-letter queue by itself (SQS's redrive, or the embedded queue's). A snooze is not a
// failure, so such a message is requeued with a fresh receive count instead. One receive
// is kept in hand because SQS's receive count is approximate. A queue without a redrive
// threshold, or one that cannot say, keeps SetVisibility.
func (r *runner) lastReceives(ctx context.Context, m queue.Message) bool {
	n := r.maxReceive(ctx, m)
	return n > 0 && m.Attempts >= n-1
}

// exhausted reports whether m is on its last receive: a failed attempt now would only
// hide it until the queue's redrive moved it to the dead-letter queue without its error,
// so the worker dead-letters it itself (reason.ExhaustedRetries, with the last error).
func (r *runner) exhausted(ctx context.Context, m queue.Message) bool {
	n := r.maxReceive(ctx, m)
	return n > 0 && m.Attempts >= n
}

// requeue hands m back with a fresh receive count, delayed by d. Should that fail, m is
// hidden for d with SetVisibility instead, so that it is not retried at once.
func (r *runner) requeue(ctx context.Context, m queue.Message, d time.Duration) error {
	err := r.w.Queue.Requeue(ctx, m, d)
	if err == nil {
		return nil
	}
	if verr := r.w.Queue.SetVisibility(ctx, m, d); verr != nil {
		return errors.Join(err, verr)
	}
	return err
}

// settle routes the outcome of a job — the one place where messages are deleted,
// dead-lettered, snoozed or released — and logs it.
func (r *runner) settle(m queue.Message, j job.Job, res Result, err error, took time.Duration) {
	r.mu.Lock()
	_, mine := r.inflight[m.Receipt]
	delete(r.inflight, m.Receipt)
	r.mu.Unlock()
	if !mine {
		return // released by drain already
	}
	o, why, delay := outcomeOf(err)
	ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
	defer cancel()
	switch {
	case o == outRetry && r.jobCtx.Err() != nil:
		o = outRelease
	case o == outRetry && r.exhausted(ctx, m):
		o, why = outDeadLetter, reason.ExhaustedRetries
	}

	var qerr error
	requeued := false
	switch o {
	case outSuccess, outSkip:
		qerr = r.w.Queue.Delete(ctx, []queue.Message{m})
	case outDeadLetter:
		qerr = r.w.Queue.DeadLetter(ctx, m, why, err.Error())
	case outSnooze:
		// A snooze is not a failure: it does not grow with the attempts (which count
		// deferrals and pacing too). AWS's throttling is backed off where the calls are
		// made: each throttle halves the account-region's rate in the limiter, and
		// admission starts jobs only at that rate, however many are snoozed.
		if requeued = r.lastReceives(ctx, m); requeued {
			qerr = r.requeue(ctx, m, delay)
		} else {
			qerr = r.w.Queue.SetVisibility(ctx, m, delay)
		}
	case outRetry:
		delay = r.retryDelay(m.Attempts)
		qerr = r.w.Queue.SetVisibility(ctx, m, delay)
	case outRelease:
		qerr = r.w.Queue.SetVisibility(ctx, m, 0)
	}

	r.mu.Lock()
	switch o {
	case outSuccess:
		r.stats.Processed++
		switch res.Action {
		case Created:
			r.stats.Created++
		case Deleted:
			r.stats.Deleted++
		}
	case outSkip:
		r.stats.Processed++
		r.stats.Skipped++
	case outDeadLetter:
		r.stats.Processed++
		if qerr == nil {
			r.stats.DeadLettered++
		}
	case outSnooze, outRetry:
		r.stats.Processed++
		r.stats.Retried++
	}
	r.mu.Unlock()
	r.observe(Observation{Kind: j.Kind, Outcome: o.String(), Reason: why, Err: qerr})

	snapshot := res.Snapshot
	if snapshot == "" {
		snapshot = j.Snapshot
	}
	var ev *zerolog.Event
	switch o {
	case outSuccess, outRelease:
		ev = r.log.Info()
	case outDeadLetter:
		ev = r.log.Error()
	default:
		ev = r.log.Warn()
	}
	if qerr != nil {
		ev = r.log.Error().AnErr("queue_error", qerr)
	}
	ev = ev.Str("run", j.Run).Str("kind", j.Kind).Str("key", j.Key).
		Str("account", j.Account).Str("region", j.Region).Str("policy", j.Policy).
		Str("volume", j.Volume).Str("snapshot", snapshot).
		Str("outcome", o.String()).Str("message_id", m.ID).Int("attempts", m.Attempts).Dur("took", took)
	if why != "" {
		ev = ev.Str("why", why)
	}
	if res.Action != "" {
		ev = ev.Str("action", string(res.Action))
	}
	if delay > 0 {
		ev = ev.Dur("delay", delay)
	}
	if requeued {
		ev = ev.Bool("requeued", true)
	}
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("job " + o.String())
}
