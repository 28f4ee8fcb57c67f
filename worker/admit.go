package worker

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/queue"
)

// Admission: the runner receives more messages than it has slots and holds them, one
// first-in-first-out line per scope (account, region and kind of job). A free slot goes to
// the next scope in turn whose jobs' tokens the rate limiter can reserve now
// (limit.Limiter.Admit): a job never takes a slot to wait for a bucket to refill, and one
// busy account-region cannot fill every slot while others' buckets sit full. Of a scope,
// the runner holds what its buckets can start within holdAhead; it defers the rest back
// to the queue, spread at the bucket's rate, so that it keeps room for other scopes' jobs
// whatever order the queue hands them out in.

// scope is what admission keeps apart.
type scope struct{ account, region, kind string }

// held is a received message waiting for admission.
type held struct {
	m    queue.Message
	j    job.Job
	sc   scope
	ok   bool   // decoded, with tokens to reserve; else started as soon as a slot is free
	key  string // the job's key when decoded: two deliveries of one key never run at once
	stop func() // its heartbeat

	// Once admitted (at the head of its line): the context carrying its reserved tokens,
	// their release, and when the last of them is due.
	ctx     context.Context
	release func()
	due     time.Time
}

// backlog is the runner's held messages; guarded by runner.mu.
type backlog struct {
	lines     map[scope][]*held
	ring      []scope // scopes with held messages, served in turn
	next      int     // position in ring of the next scope to serve
	notBefore map[scope]time.Time
	deferTo   map[scope]time.Time // the latest time a deferred message of the scope was given
	avgJob    time.Duration       // moving average of the time a job takes
}

func newBacklog() backlog {
	return backlog{lines: map[scope][]*held{}, notBefore: map[scope]time.Time{}, deferTo: map[scope]time.Time{}}
}

func (b *backlog) push(h *held) {
	if len(b.lines[h.sc]) == 0 {
		b.ring = append(b.ring, h.sc)
	}
	b.lines[h.sc] = append(b.lines[h.sc], h)
}

// pop removes the head of the line at ring position i.
func (b *backlog) pop(i int) *held {
	sc := b.ring[i]
	line := b.lines[sc]
	h := line[0]
	if len(line) == 1 {
		delete(b.lines, sc)
		delete(b.notBefore, sc)
		b.ring = slices.Delete(b.ring, i, i+1)
		if b.next > i {
			b.next--
		}
	} else {
		b.lines[sc] = line[1:]
	}
	if len(b.ring) > 0 {
		b.next %= len(b.ring)
	} else {
		b.next = 0
	}
	return h
}

// needs are the rate-limited calls a job of kind makes when it does its work, reserved
// before it starts. The job-tag lookups and the volume listings are not among them: they
// are coalesced across jobs (lookups), each batch reserving its own token.
func needs(kind string) []limit.Need {
	switch kind {
	case job.KindCreate:
		return []limit.Need{{Action: "CreateSnapshot", N: 1}}
	case job.KindCreateInstance: // the instance, the create
		return []limit.Need{{Action: "DescribeInstances", N: 1}, {Action: "CreateSnapshots", N: 1}}
	case job.KindDelete: // the shares, the delete (the locks are listed per lockTTL)
		return []limit.Need{{Action: "DescribeSnapshotAttribute", N: 1}, {Action: "DeleteSnapshot", N: 1}}
	case job.KindDrill: // the restore (its DeleteVolume waits on its own bucket when due)
		return []limit.Need{{Action: "CreateVolume", N: 1}}
	}
	return nil
}

// poke wakes the dispatcher.
func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// hold takes a received message into the backlog, or defers it when its scope already
// has as many held as its buckets can start within holdAhead. Its room is taken.
func (r *runner) hold(m queue.Message) {
	h := &held{m: m}
	if j, err := job.Decode(m.Body); err == nil {
		h.key = j.Key
		if r.w.Limiter != nil && r.needs(j) != nil {
			h.j, h.sc, h.ok = j, scope{j.Account, j.Region, j.Kind}, true
		}
	}
	now := time.Now()
	r.mu.Lock()
	r.inflight[m.Receipt] = m
	var delay time.Duration
	if h.ok {
		// A fair share of the room when many scopes are held, and no more than the
		// buckets can start within holdAhead (lineCap).
		_, now0, rate := r.startable(h.j)
		if n := len(r.backlog.lines[h.sc]); float64(n) >= r.lineCap(h.j) {
			// Back when it could start: behind the n held, once its bucket has a token
			// for it and the slots have started those ahead; and after the one deferred
			// before, by the time a job takes in the slots or, the burst spent, the
			// bucket's refill.
			perJob := r.avgJob().Seconds() / float64(cap(r.slots))
			at := now.Add(seconds(max((float64(n)+1-now0)/rate, float64(n)*perJob)))
			if last := r.backlog.deferTo[h.sc]; last.After(now) {
				spacing := perJob
				if now0 < float64(n)+1 {
					spacing = max(spacing, 1/rate)
				}
				if next := last.Add(seconds(spacing)); next.After(at) {
					at = next
				}
			}
			delay = max(at.Sub(now), minDefer)
			r.backlog.deferTo[h.sc] = now.Add(delay)
		}
	}
	r.mu.Unlock()
	if delay > 0 {
		r.wg.Add(1)
		go func() {
			defer func() { <-r.room; r.wg.Done() }()
			r.deferMsg(m, h.j, delay)
		}()
		return
	}
	h.stop = r.heartbeat(m)
	r.mu.Lock()
	r.backlog.push(h)
	r.mu.Unlock()
	r.poke()
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// avgJob is the average time a job has taken (guessed at first, for when a deferred
// message could start). r.mu is held.
func (r *runner) avgJob() time.Duration {
	if r.backlog.avgJob <= 0 {
		return 100 * time.Millisecond
	}
	return r.backlog.avgJob
}

// slotsCanStart is how many jobs this runner's slots can start within holdAhead; until a
// job has run, its slots: workers started together share the queue rather than the first
// to receive holding what a guess said it could start (a guess of 100 ms once let two
// workers of four slots hold 160 messages of 300 ms jobs, and a third worker started a
// moment later found none). r.mu is held.
func (r *runner) slotsCanStart() float64 {
	if r.backlog.avgJob <= 0 {
		return float64(cap(r.slots))
	}
	return float64(cap(r.slots)) * float64(holdAhead) / float64(r.avgJob())
}

// holdable is how many unstarted messages the runner holds at most: what its slots can
// start within holdAhead, and never fewer than its slots. r.mu is held.
func (r *runner) holdable() float64 {
	return max(r.slotsCanStart(), float64(cap(r.slots)))
}

// ran records how long a job took, for slotsCanStart.
func (r *runner) ran(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backlog.avgJob <= 0 {
		r.backlog.avgJob = d
	} else {
		r.backlog.avgJob = (r.backlog.avgJob*7 + d) / 8
	}
}

// heldFull reports whether the runner holds as many unstarted messages as its slots can
// start within holdAhead: it then receives no more until some start, and leaves the
// queue's other messages to other workers.
func (r *runner) heldFull() bool {
	n := r.heldCount()
	r.mu.Lock()
	defer r.mu.Unlock()
	return float64(n) >= r.holdable() || r.receivable() == 0
}

// startable is how many jobs like j the limiter could start within holdAhead and at
// once, and the rate at which it could start them after that (per second, the slowest of
// j's buckets, at their configured rates).
func (r *runner) startable(j job.Job) (n, now, rate float64) {
	n, now, rate = math.Inf(1), math.Inf(1), math.Inf(1)
	for _, need := range limit.ByAction(r.needs(j)) {
		held := r.w.Limiter.Within(j.Account, j.Region, need.Action, 0)
		if math.IsInf(held, 1) {
			continue // not limited
		}
		_, configured := r.w.Limiter.Rate(j.Account, j.Region, need.Action)
		n = min(n, (held+configured*holdAhead.Seconds())/float64(need.N))
		now = min(now, held/float64(need.N))
		rate = min(rate, configured/float64(need.N))
	}
	if math.IsInf(rate, 1) || rate <= 0 {
		rate = float64(cap(r.slots))
	}
	if math.IsInf(now, 1) {
		now = 0
	}
	return n, now, rate
}

// deferMsg hands m back to the queue unstarted for delay: not an attempt of its job. On
// its last receives but one it is requeued with a fresh receive count, as a snooze is.
func (r *runner) deferMsg(m queue.Message, j job.Job, delay time.Duration) {
	r.mu.Lock()
	delete(r.inflight, m.Receipt)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.qctx, queueOpTimeout)
	defer cancel()
	var err error
	requeued := r.lastReceives(ctx, m)
	if requeued {
		err = r.requeue(ctx, m, delay)
	} else {
		err = r.w.Queue.SetVisibility(ctx, m, delay)
	}
	r.mu.Lock()
	r.stats.Deferred++
	r.mu.Unlock()
	r.observe(Observation{Kind: j.Kind, Outcome: "deferred", Err: err, Account: j.Account, Region: j.Region})
	ev := r.log.Debug()
	if err != nil {
		ev = r.log.Error().AnErr("queue_error", err)
	}
	ev.Str("run", j.Run).Str("kind", j.Kind).Str("key", j.Key).Str("account", j.Account).Str("region", j.Region).
		Str("message_id", m.ID).Int("attempts", m.Attempts).Dur("delay", delay).Bool("requeued", requeued).
		Msg("job deferred: its rate limit cannot start it soon")
}

// dispatch starts held jobs as slots free up, scope by scope in turn, each when its
// tokens are reserved, until stop is closed.
func (r *runner) dispatch(stop <-chan struct{}) {
	for {
		select {
		case r.slots <- struct{}{}:
		case <-stop:
			return
		}
		h, ctx, release, wait := r.pick()
		if h != nil {
			r.start(h, ctx, release)
			select {
			case r.started <- struct{}{}:
			default:
			}
			continue
		}
		// Nothing may start yet: the slot stays free meanwhile, for a job that resumes
		// after its lookup (resume).
		<-r.slots
		t := time.NewTimer(wait)
		select {
		case <-r.wake:
		case <-t.C:
		case <-stop:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// keyPoll is how often the dispatcher looks again at a job held behind another delivery
// of its key.
const keyPoll = 50 * time.Millisecond

// pick takes the next held job that may start now, with its admitted context; or, when
// none may, says how long until one might (or a poke).
func (r *runner) pick() (*held, context.Context, func(), time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := &r.backlog
	now := time.Now()
	wait := time.Hour
	for range len(b.ring) {
		i := b.next
		sc := b.ring[i]
		b.next = (i + 1) % len(b.ring)
		if nb, ok := b.notBefore[sc]; ok && nb.After(now) {
			wait = min(wait, nb.Sub(now))
			continue
		}
		h := b.lines[sc][0]
		if h.key != "" && r.keys[h.key] > 0 {
			// Another delivery of this job is running: this one starts after it.
			wait = min(wait, keyPoll)
			continue
		}
		if !h.ok {
			return b.pop(i), r.jobCtx, func() {}, 0
		}
		if h.ctx == nil {
			// Reserve the head's tokens as far as admitAhead: held for it, not taken
			// by jobs needing fewer tokens of its buckets meanwhile.
			ctx, release, d, ok := r.w.Limiter.Admit(r.jobCtx, h.j.Account, h.j.Region, r.needs(h.j), admitAhead)
			if !ok {
				b.notBefore[sc] = now.Add(d - admitAhead)
				wait = min(wait, d-admitAhead)
				continue
			}
			h.ctx, h.release, h.due = ctx, release, now.Add(d)
		}
		if d := h.due.Sub(now); d > admitWait {
			b.notBefore[sc] = h.due.Add(-admitWait)
			wait = min(wait, d-admitWait)
			continue
		}
		return b.pop(i), h.ctx, h.release, 0
	}
	return nil, nil, nil, max(wait, time.Millisecond)
}

// startNow starts m's job without admission (HandleBatch: the batch is the backlog);
// its slot and room are taken.
func (r *runner) startNow(m queue.Message) {
	r.mu.Lock()
	r.inflight[m.Receipt] = m
	r.mu.Unlock()
	r.start(&held{m: m, stop: r.heartbeat(m)}, r.jobCtx, func() {})
}

// heldCount is how many messages are held.
func (r *runner) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, line := range r.backlog.lines {
		n += len(line)
	}
	return n
}

// releaseHeld hands every held message back to the queue: the runner is stopping. It
// first lets the last receive's wait run out at the queue (afterPoll).
func (r *runner) releaseHeld() {
	if r.heldCount() == 0 {
		return
	}
	r.afterPoll()
	r.mu.Lock()
	var hs []*held
	for _, line := range r.backlog.lines {
		hs = append(hs, line...)
	}
	avg := r.backlog.avgJob
	r.backlog = newBacklog()
	r.backlog.avgJob = avg
	for _, h := range hs {
		delete(r.inflight, h.m.Receipt)
	}
	r.mu.Unlock()
	for _, h := range hs {
		if h.release != nil {
			h.release()
		}
		h.stop()
		r.release(h.m)
		<-r.room
	}
}
