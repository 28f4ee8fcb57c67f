package worker

import (
	"context"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/queue"
)

// deleteWait bounds how long the message of a finished job waits to be deleted in one
// call with others' (SQS's DeleteMessageBatch takes 10): at a few jobs a second per
// worker, one call then deletes several messages instead of one each.
const deleteWait = time.Second

// deleteBatch gathers the messages of finished jobs; guarded by its mu.
type deleteBatch struct {
	mu      sync.Mutex
	pending []pendingDelete
	timer   *time.Timer
}

type pendingDelete struct {
	m    queue.Message
	done chan error
}

// deleteMsg deletes m, which settle has taken out of inflight, in one queue call with the
// messages of other jobs that finish within deleteWait (fewer when maxBatch are waiting,
// none when the runner has no other message in flight: nothing else would come), and
// returns that deletion's error. While it waits, m no longer takes room (leave, called
// once m is in the batch). Alone means no other message is in flight, nor another job
// between settle and its own place in the batch, which would otherwise be left to the
// timer.
func (r *runner) deleteMsg(ctx context.Context, m queue.Message, leave func()) error {
	d := pendingDelete{m: m, done: make(chan error, 1)}
	r.mu.Lock()
	alone := len(r.inflight) == 0 && r.settling <= 1
	r.mu.Unlock()
	if _, local := r.w.Queue.(*delivered); local {
		alone = true // HandleBatch's: it only records what is done, and saves no call
	}
	b := &r.deletes
	b.mu.Lock()
	b.pending = append(b.pending, d)
	var now []pendingDelete
	switch {
	case alone || len(b.pending) >= maxBatch:
		now = b.takeLocked()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(deleteWait, r.flushDeletes)
	}
	b.mu.Unlock()
	if now != nil {
		r.deleteNow(now)
	}
	leave()
	select {
	case err := <-d.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeLocked empties the batch; b.mu is held.
func (b *deleteBatch) takeLocked() []pendingDelete {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	out := b.pending
	b.pending = nil
	return out
}

// flushDeletes deletes what is waiting (deleteWait ran out).
func (r *runner) flushDeletes() {
	r.deletes.mu.Lock()
	ds := r.deletes.takeLocked()
	r.deletes.mu.Unlock()
	if len(ds) > 0 {
		r.deleteNow(ds)
	}
}

// deleteNow deletes ds's messages in one call and answers each; when that call fails,
// each is deleted alone, so that each gets its own error.
func (r *runner) deleteNow(ds []pendingDelete) {
	ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
	defer cancel()
	msgs := make([]queue.Message, len(ds))
	for i, d := range ds {
		msgs[i] = d.m
	}
	err := r.w.Queue.Delete(ctx, msgs)
	for _, d := range ds {
		if err != nil && len(ds) > 1 {
			d.done <- r.w.Queue.Delete(ctx, []queue.Message{d.m})
			continue
		}
		d.done <- err
	}
}
