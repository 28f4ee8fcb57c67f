package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/queue"
)

// BatchResult is what HandleBatch did with a batch of delivered messages.
type BatchResult struct {
	// Retry are the IDs of the messages to deliver again: snoozed (throttled) or retryable
	// jobs, jobs released at the deadline or never started, and permanent failures whose
	// dead-lettering failed. An SQS event source mapping reports them as batch item
	// failures; every other message of the batch is done and may be deleted.
	Retry []string
	// DeadLettered are the IDs of the messages this batch sent to the dead-letter queue
	// (poison: invalid_message, refused_*, ...). They are gone from the queue already; the
	// caller may still report them as failed items, and nothing retries them.
	DeadLettered []string
	Stats        Stats
}

// replyMargin is how long before the caller's deadline HandleBatch stops waiting for jobs,
// so that it can release what still runs and answer in time.
const replyMargin = time.Second

// HandleBatch handles messages that something else received from Queue — an AWS Lambda
// SQS event source mapping — and settles each exactly as Run would, except that it leaves
// the deletion of finished messages to the caller: the event source mapping deletes every
// message of the batch that is not reported for retry.
//
//   - success or skip: done (not deleted here);
//   - permanent failure (invalid_message, refused_*, ...): sent to the dead-letter queue
//     with its reason by Queue.DeadLetter, which also deletes it, and done — a poison
//     message is never retried with the batch;
//   - throttled (Snooze) or retryable: hidden for the same backoff as in Run (at least the
//     throttling code's minimum wait) and returned in Retry; a throttled message on its
//     last receive but one is requeued as in Run (a delayed copy sent, the original
//     deleted here) and also returned in Retry, which for a deleted message is a no-op;
//     a retryable failure on the queue's last receive is dead-lettered as in Run
//     (exhausted_retries, with its error) and returned in DeadLettered;
//   - still running shortly before ctx's deadline: cancelled, released and returned in
//     Retry.
//
// Messages need ID, Receipt, Body and Attempts. Jobs run up to Concurrency at once.
func (w *Worker) HandleBatch(ctx context.Context, msgs []queue.Message) (BatchResult, error) {
	if w.Queue == nil {
		return BatchResult{}, errors.New("worker: Queue is nil")
	}
	d := &delivered{Queue: w.Queue, done: map[string]bool{}, dead: map[string]bool{}}
	cp := *w
	cp.Queue = d
	// A grace long enough for any batch when the caller gives no deadline.
	cp.ShutdownGrace = 24 * time.Hour
	deadline, hasDeadline := ctx.Deadline()
	softDeadline := func() time.Duration {
		return time.Until(deadline) - replyMargin - cp.waitAfterCancel()
	}
	r, err := cp.newRunner(ctx)
	if err != nil {
		return BatchResult{}, err
	}
	defer r.stopJob()

	started := make(map[string]bool, len(msgs))
	var timeout <-chan time.Time
	if hasDeadline {
		t := time.NewTimer(max(softDeadline(), 0))
		defer t.Stop()
		timeout = t.C
	}
start:
	for _, m := range msgs {
		select {
		case r.slots <- struct{}{}:
		case <-timeout:
			break start
		}
		r.room <- struct{}{} // never blocks: the room is larger than the slots
		started[m.Receipt] = true
		r.startNow(m)
	}
	if hasDeadline {
		cp.ShutdownGrace = max(softDeadline(), time.Millisecond)
	}
	r.drain()

	var res BatchResult
	for _, m := range msgs {
		done, dead := d.state(m.Receipt)
		switch {
		case !started[m.Receipt] || !done:
			res.Retry = append(res.Retry, m.ID)
		case dead:
			res.DeadLettered = append(res.DeadLettered, m.ID)
		}
	}
	r.mu.Lock()
	res.Stats = r.stats
	r.mu.Unlock()
	r.log.Info().Int("messages", len(msgs)).Int("retry", len(res.Retry)).
		Int("processed", res.Stats.Processed).Int("created", res.Stats.Created).
		Int("deleted", res.Stats.Deleted).Int("skipped", res.Stats.Skipped).
		Int("retried", res.Stats.Retried).Int("dead_lettered", res.Stats.DeadLettered).
		Msg("batch handled")
	return res, nil
}

// waitAfterCancel is how long drain waits for cancelled jobs before it releases them.
func (w *Worker) waitAfterCancel() time.Duration {
	if w.forceWait > 0 {
		return w.forceWait
	}
	return forceWait
}

// delivered is the Queue of HandleBatch: it records which messages the runner settled as
// done, and leaves their deletion to the event source mapping. Dead-lettering, visibility
// changes (backoff, heartbeats, releases) go to the real queue.
type delivered struct {
	Queue
	mu   sync.Mutex
	done map[string]bool // by receipt
	dead map[string]bool // by receipt: dead-lettered (and so done)
}

func (d *delivered) Delete(_ context.Context, msgs []queue.Message) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		d.done[m.Receipt] = true
	}
	return nil
}

func (d *delivered) DeadLetter(ctx context.Context, m queue.Message, reason, lastErr string) error {
	if err := d.Queue.DeadLetter(ctx, m, reason, lastErr); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done[m.Receipt] = true
	d.dead[m.Receipt] = true
	return nil
}

func (d *delivered) state(receipt string) (done, dead bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done[receipt], d.dead[receipt]
}
