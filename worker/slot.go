package worker

import (
	"context"
	"sync"
	"time"
)

// A job holds one of the runner's slots while it works. While it only waits for a
// coalesced lookup (lookups: a batch gathering other jobs' values), it works at nothing:
// it gives its slot back (idle), so that the runner starts other jobs, whose lookups then
// join the same batch; once the batch has answered, the job takes a slot again (resume)
// before it goes on, so that no more than --concurrency jobs ever work at once (a worker
// told to stop then holds no more calls in flight than that, and two deliveries of one
// job, which the runner never starts together, cannot overtake each other).

// slotLease is a running job's hold on its slot.
type slotLease struct {
	r     *runner
	scope [2]string // the job's account and region; empty when not decoded
	began time.Time
	mu    sync.Mutex
	held  bool
	since time.Time     // when the slot was last taken
	used  time.Duration // how long the slot was held, summed as it is given back
	room  bool          // the job's message still takes room (runner.room)
}

type leaseKey struct{}

// withLease gives a job's context its slot's lease.
func withLease(ctx context.Context, l *slotLease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// idle gives back the slot of the job running under ctx, if it still holds it.
func idle(ctx context.Context) {
	if l, ok := ctx.Value(leaseKey{}).(*slotLease); ok {
		l.end()
	}
}

// end gives the slot back once and returns how long it was held.
func (l *slotLease) end() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.held = false
		l.used += time.Since(l.since)
		<-l.r.slots
		l.r.poke()
	}
	return l.used
}

// resume takes a slot again for the job running under ctx after idle: it waits for one
// (or for ctx to end).
func resume(ctx context.Context) error {
	l, ok := ctx.Value(leaseKey{}).(*slotLease)
	if !ok {
		return nil
	}
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if held {
		return nil
	}
	select {
	case l.r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	l.held, l.since = true, time.Now()
	l.mu.Unlock()
	return nil
}

// leaveRoom gives the job's room back once: its message is settled, or waits only for
// its batched delete (deleteMsg), and the worker may receive another.
func (l *slotLease) leaveRoom() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.room {
		l.room = false
		<-l.r.room
		l.r.poke()
	}
}

// peers reports whether the runner of the job running under ctx has other jobs of the
// account-region, running or held: only then may a lookup's batch gather others'. Not
// when the jobs running take more than half the runner's room: a job waiting for a batch
// keeps its message's room, and the room bounds how many jobs a second the worker can
// take in, so a busy worker puts its throughput before saving Describe calls.
func peers(ctx context.Context, account, region string) bool {
	l, ok := ctx.Value(leaseKey{}).(*slotLease)
	if !ok {
		return false
	}
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	held := 0
	for _, line := range r.backlog.lines {
		held += len(line)
	}
	if running := len(r.inflight) - held; 2*running > cap(r.room) {
		return false
	}
	n := r.byScope[[2]string{account, region}]
	if l.scope != [2]string{account, region} {
		n++ // not counted as running: count the caller itself
	}
	for sc, line := range r.backlog.lines {
		if sc.account == account && sc.region == region {
			n += len(line)
		}
	}
	return n > 1
}

// runs counts a job of scope as running (+1) or no longer (-1). r.mu is held.
func (r *runner) runs(scope [2]string, d int) {
	if scope == [2]string{} {
		return
	}
	if r.byScope == nil {
		r.byScope = map[[2]string]int{}
	}
	if r.byScope[scope] += d; r.byScope[scope] <= 0 {
		delete(r.byScope, scope)
	}
}
