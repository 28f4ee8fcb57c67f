package worker

import (
	"context"
	"sync"
	"time"
)

// A job holds one of the runner's slots while it works. While it only waits for a
// coalesced lookup (lookups: a batch gathering other jobs' values), it works at nothing:
// it gives its slot back (idle), so that the runner starts other jobs, whose lookups then
// join the same batch. The slot is not taken again: what is left of the job is calls
// whose tokens it holds, and the jobs running are still bounded by the room of held
// messages and by admission, which starts jobs only as the buckets allow.

// slotLease is a running job's hold on its slot.
type slotLease struct {
	r     *runner
	scope [2]string // the job's account and region; empty when not decoded
	began time.Time
	mu    sync.Mutex
	held  bool
	used  time.Duration // how long the slot was held, once given back
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
		l.used = time.Since(l.began)
		<-l.r.slots
		l.r.poke()
	}
	return l.used
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
