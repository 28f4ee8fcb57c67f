package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

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
func (r *runner) settle(m queue.Message, j job.Job, res Result, err error, took time.Duration, leave func()) {
	r.mu.Lock()
	_, mine := r.inflight[m.Receipt]
	delete(r.inflight, m.Receipt)
	if mine {
		r.settling++
	}
	r.mu.Unlock()
	if !mine {
		return // released by drain already
	}
	// Settling ends once the message's delete waits in the batch (deleteMsg), or with the
	// queue call of any other outcome.
	doneSettling := sync.OnceFunc(func() {
		r.mu.Lock()
		r.settling--
		r.mu.Unlock()
	})
	defer doneSettling()
	ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
	defer cancel()
	s := r.route(ctx, m, err)
	r.apply(ctx, m, err, &s, func() { doneSettling(); leave() })
	r.count(s, res)
	r.audit(m, j, res, err, s)
	r.observe(Observation{Kind: j.Kind, Outcome: s.o.String(), Reason: s.why, Err: s.qerr, Account: j.Account, Region: j.Region})
	r.logSettled(m, j, res, err, took, s)
}

// settled is what settle did with a message.
type settled struct {
	o     outcome
	why   string        // the dead-letter or skip reason
	delay time.Duration // how long the message is hidden
	// requeued: the message was requeued with a fresh receive count (lastReceives).
	requeued bool
	qerr     error // the queue call's failure
}

// route decides the outcome of a job's error (outcomeOf): a retry is a release once the
// jobs are cancelled, and a dead letter on the message's last receive.
func (r *runner) route(ctx context.Context, m queue.Message, err error) settled {
	o, why, delay := outcomeOf(err)
	switch {
	case o == outRetry && r.jobCtx.Err() != nil:
		o = outRelease
	case o == outRetry && r.exhausted(ctx, m):
		o, why = outDeadLetter, reason.ExhaustedRetries
	}
	return settled{o: o, why: why, delay: delay}
}

// apply makes the queue call of s's outcome for m.
func (r *runner) apply(ctx context.Context, m queue.Message, err error, s *settled, leave func()) {
	switch s.o {
	case outSuccess, outSkip:
		s.qerr = r.deleteMsg(ctx, m, leave)
	case outDeadLetter:
		s.qerr = r.w.Queue.DeadLetter(ctx, m, s.why, err.Error())
	case outSnooze:
		// A snooze is not a failure: it does not grow with the attempts (which count
		// deferrals and pacing too). AWS's throttling is backed off where the calls are
		// made: each throttle halves the account-region's rate in the limiter, and
		// admission starts jobs only at that rate, however many are snoozed.
		if s.requeued = r.lastReceives(ctx, m); s.requeued {
			s.qerr = r.requeue(ctx, m, s.delay)
		} else {
			s.qerr = r.w.Queue.SetVisibility(ctx, m, s.delay)
		}
	case outRetry:
		s.delay = r.retryDelay(m.Attempts)
		s.qerr = r.w.Queue.SetVisibility(ctx, m, s.delay)
	case outRelease:
		r.afterPoll()
		s.qerr = r.w.Queue.SetVisibility(ctx, m, 0)
	}
}

// count adds a settled message to the stats.
func (r *runner) count(s settled, res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res.Fallback {
		r.stats.Fallbacks++
	}
	if res.PostFailed {
		r.stats.PostFailures++
	}
	switch s.o {
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
		if s.qerr == nil {
			r.stats.DeadLettered++
		}
	case outSnooze, outRetry:
		r.stats.Processed++
		r.stats.Retried++
	}
}

// logSettled logs a settled job, one line a job.
func (r *runner) logSettled(m queue.Message, j job.Job, res Result, err error, took time.Duration, s settled) {
	snapshot := res.Snapshot
	if snapshot == "" {
		snapshot = j.Snapshot
	}
	var ev *zerolog.Event
	switch s.o {
	case outSuccess, outRelease:
		ev = r.log.Info()
	case outDeadLetter:
		ev = r.log.Error()
	default:
		ev = r.log.Warn()
	}
	if s.qerr != nil {
		ev = r.log.Error().AnErr("queue_error", s.qerr)
	}
	ev = ev.Str("run", j.Run).Str("kind", j.Kind).Str("key", j.Key).
		Str("account", j.Account).Str("region", j.Region).Str("policy", j.Policy).
		Str("volume", j.Volume).Str("snapshot", snapshot).
		Str("outcome", s.o.String()).Str("message_id", m.ID).Int("attempts", m.Attempts).Dur("took", took)
	if s.why != "" {
		ev = ev.Str("reason", s.why)
	}
	if res.Action != "" {
		ev = ev.Str("action", string(res.Action))
	}
	if s.delay > 0 {
		ev = ev.Dur("delay", s.delay)
	}
	if s.requeued {
		ev = ev.Bool("requeued", true)
	}
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("job " + s.o.String())
}
