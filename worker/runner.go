package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
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
	byScope  map[[2]string]int        // admitted jobs running, by account and region
	keys     map[string]int           // jobs running, by key: a second delivery waits
	settling int                      // jobs out of inflight whose queue call is not yet made or batched
	deletes  deleteBatch              // finished jobs' messages waiting to be deleted together
	// pollEnd is when the last receive's wait ends at the queue: a receive cancelled on
	// our side may still take messages there until then.
	pollEnd time.Time
}

// receiveWait is how long one Receive may wait for messages: short while messages are
// held or jobs run, whose messages a shutdown releases only once the wait is over at the
// queue (afterPoll).
func (r *runner) receiveWait() time.Duration {
	switch {
	case r.heldCount() > 0:
		return min(r.baseReceiveWait(), heldPoll)
	case r.running() > 0:
		return min(r.baseReceiveWait(), runningPoll)
	}
	return r.baseReceiveWait()
}

// afterPoll waits until the last receive's wait is over at the queue: a long poll
// cancelled on our side goes on at SQS (and moto), and would take a message released
// before its end to nobody for a visibility timeout. Called before any release at
// shutdown; the wait is short (receiveWait) whenever there is something to release.
func (r *runner) afterPoll() {
	r.mu.Lock()
	wait := time.Until(r.pollEnd) + 200*time.Millisecond
	r.mu.Unlock()
	if wait > 0 {
		time.Sleep(min(wait, maxLongPoll))
	}
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
	idle := idleWatch{lastBusy: time.Now()}
	failures := 0
	for ctx.Err() == nil {
		n, ok := r.takeRoom(ctx)
		if !ok {
			return nil
		}
		msgs, err := r.receive(ctx, n)
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
		if r.exitNow(ctx, &idle, len(msgs)) {
			return nil
		}
	}
	return nil
}

// takeRoom waits until the worker may hold another message and takes room for it, then
// for any others free now, up to a batch: it never receives more than can be held, nor
// more than the slots can start soon. False when ctx ends first.
func (r *runner) takeRoom(ctx context.Context) (n int, ok bool) {
	for r.heldFull() {
		select {
		case <-r.started:
		case <-ctx.Done():
			return 0, false
		}
	}
	select {
	case r.room <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	if ctx.Err() != nil { // select picks at random when both are ready
		<-r.room
		return 0, false
	}
	n = 1
	r.mu.Lock()
	most := min(cap(r.room), maxBatch, max(r.receivable(), 1))
	r.mu.Unlock()
	for n < most {
		select {
		case r.room <- struct{}{}:
			n++
		default:
			return n, true
		}
	}
	return n, true
}

// receive asks the queue for up to n messages and gives back the room of those it did
// not get.
func (r *runner) receive(ctx context.Context, n int) ([]queue.Message, error) {
	wait := r.receiveWait()
	r.mu.Lock()
	r.pollEnd = time.Now().Add(wait)
	r.mu.Unlock()
	msgs, err := r.w.Queue.Receive(ctx, n, wait)
	if ctx.Err() == nil {
		r.mu.Lock()
		r.pollEnd = time.Now() // it returned: its wait is over at the queue too
		r.mu.Unlock()
	}
	r.observe(Observation{Polled: true, Received: len(msgs), Err: err})
	for range n - len(msgs) {
		<-r.room
	}
	return msgs, err
}

// idleWatch is what loop keeps to decide when an idle or drained queue ends Run.
type idleWatch struct {
	lastBusy time.Time
	empty    int // counts in a row that found the queue empty
}

// exitNow reports, after a receive that got received messages, whether Run ends: with
// IdleExit once the queue has been empty that long, with ExitWhenDrained once it is
// empty.
func (r *runner) exitNow(ctx context.Context, w *idleWatch, received int) bool {
	if received > 0 || r.running() > 0 {
		w.lastBusy = time.Now()
		w.empty = 0
		return false
	}
	idle := r.w.IdleExit > 0 && time.Since(w.lastBusy) >= r.w.IdleExit
	if !idle && !r.w.ExitWhenDrained {
		return false
	}
	// Nothing visible is not empty: messages held by other workers, or hidden for a
	// back-off, still count. A worker exits only when the queue holds nothing at all.
	if !r.queueEmpty(ctx) {
		if idle {
			w.lastBusy = time.Now()
		}
		w.empty = 0
		return false
	}
	// SQS's counts are approximate, each read at its own instant: a message whose
	// hiding ends between the reads of "visible" and "not visible" is in neither. The
	// queue is empty when a second count, after one more receive, agrees.
	if w.empty++; w.empty < emptyCounts {
		return false
	}
	if idle {
		r.log.Info().Dur("idle", time.Since(w.lastBusy)).Msg("queue empty, exiting")
	} else {
		r.log.Info().Msg("queue drained, exiting")
	}
	return true
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
	now := time.Now()
	lease := &slotLease{r: r, began: now, since: now, held: true, room: true}
	key := h.key
	if h.ok {
		lease.scope = [2]string{h.j.Account, h.j.Region}
	}
	r.mu.Lock()
	r.runs(lease.scope, 1)
	r.keys[key]++
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			r.runs(lease.scope, -1)
			if r.keys[key]--; r.keys[key] <= 0 {
				delete(r.keys, key)
			}
			r.mu.Unlock()
			lease.end()
			lease.leaveRoom()
			r.wg.Done()
		}()
		j, res, err := r.handle(withLease(ctx, lease), h.m)
		release()
		h.stop()
		r.ran(lease.end())
		r.settle(h.m, j, res, err, time.Since(lease.began), lease.leaveRoom)
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

// release hands m back to the queue, once the last receive's wait is over (afterPoll).
func (r *runner) release(m queue.Message) {
	r.afterPoll()
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
