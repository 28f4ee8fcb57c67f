package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// maxScopeLines is how many account-regions the display lists, busiest first.
const maxScopeLines = 8

// tally counts one account-region's jobs: planned and done by kind (0: creates and the
// like, 1: deletes), deferred and dead-lettered.
type tally struct {
	account, region string
	planned, done   [2]int
	deferred, dead  int
}

func kindIndex(kind string) int {
	if kind == job.KindDelete {
		return 1
	}
	return 0
}

// rateActions are the bucket that paces each kind index.
var rateActions = [2]string{"CreateSnapshot", "DeleteSnapshot"}

func (t *tally) left(k int) int { return max(t.planned[k]-t.done[k], 0) }

// eta is how long the account-region's buckets need for what is left; false when a rate
// is unknown.
func (t *tally) eta(rate func(account, region, action string) float64) (time.Duration, bool) {
	var worst time.Duration
	for k, action := range rateActions {
		n := t.left(k)
		if n == 0 {
			continue
		}
		r := rate(t.account, t.region, action)
		if r <= 0 {
			return 0, false
		}
		worst = max(worst, time.Duration(float64(n)/r*float64(time.Second)))
	}
	return worst, true
}

// workProgress is what the display of run and work --idle-exit shows: per account-region
// the jobs planned (run) and done, deferred and dead-lettered, the queue's count (work),
// and an ETA from the buckets' current rates (account-regions run in parallel: the
// slowest one's).
type workProgress struct {
	name  string
	start time.Time
	// rate is a bucket's current rate per second (cloud.Clients.Limiter), 0 when unknown.
	rate func(account, region, action string) float64

	mu      sync.Mutex
	planned bool // the plan's counts are in (run)
	scopes  map[string]*tally
	// other counts the messages that named no account-region (undecodable).
	other tally
	// queued is the queue's count of messages left (work), -1 until known.
	queued int
}

func newWorkProgress(name string, rate func(account, region, action string) float64) *workProgress {
	return &workProgress{name: name, start: time.Now(), rate: rate, scopes: map[string]*tally{}, queued: -1}
}

func (p *workProgress) scope(account, region string) *tally {
	k := account + "/" + region
	t, ok := p.scopes[k]
	if !ok {
		t = &tally{account: account, region: region}
		p.scopes[k] = t
	}
	return t
}

// plan sets the jobs planned per account-region.
func (p *workProgress) plan(scopes []planner.Scope) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.planned = true
	for _, sc := range scopes {
		t := p.scope(sc.Account, sc.Region)
		t.planned[0] += sc.Creates
		t.planned[1] += sc.Deletes
	}
}

// setQueued records the queue's count of messages left.
func (p *workProgress) setQueued(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queued = n
}

// observe counts a settled or deferred job (worker.Worker's Observe).
func (p *workProgress) observe(o worker.Observation) {
	if o.Polled || o.Err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &p.other
	if o.Account != "" {
		t = p.scope(o.Account, o.Region)
	}
	switch o.Outcome {
	case "success", "skipped":
		t.done[kindIndex(o.Kind)]++
	case "dead_lettered":
		t.done[kindIndex(o.Kind)]++
		t.dead++
	case "deferred":
		t.deferred++
	}
}

// lines renders the display.
func (p *workProgress) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name == "run" && !p.planned {
		return []string{"run: planning · " + clockText(time.Since(p.start))}
	}
	scopes := slices.Collect(maps.Values(p.scopes))
	sum := p.other
	for _, t := range scopes {
		for k := range 2 {
			sum.planned[k] += t.planned[k]
			sum.done[k] += t.done[k]
		}
		sum.deferred += t.deferred
		sum.dead += t.dead
	}
	sort.Slice(scopes, func(i, j int) bool {
		a, b := scopes[i].left(0)+scopes[i].left(1), scopes[j].left(0)+scopes[j].left(1)
		if a != b {
			return a > b
		}
		return scopes[i].account+scopes[i].region < scopes[j].account+scopes[j].region
	})
	done := sum.done[0] + sum.done[1]
	head := fmt.Sprintf("%s: %d done", p.name, done)
	if p.planned {
		head = fmt.Sprintf("%s: %d/%d done", p.name, done, sum.planned[0]+sum.planned[1])
	} else if p.queued >= 0 {
		head += fmt.Sprintf(", %d queued", p.queued)
	}
	head += fmt.Sprintf(", %d deferred, %d dead-lettered · %s · ETA %s", sum.deferred, sum.dead,
		clockText(time.Since(p.start)), p.eta(scopes))
	out := []string{head}
	for i, t := range scopes {
		if i == maxScopeLines {
			out = append(out, fmt.Sprintf("  … and %d more account-regions", len(scopes)-i))
			break
		}
		l := fmt.Sprintf("  %s %-14s %d", t.account, t.region, t.done[0]+t.done[1])
		if p.planned {
			l += fmt.Sprintf("/%d", t.planned[0]+t.planned[1])
		}
		l += fmt.Sprintf(" done, %d deferred, %d dead", t.deferred, t.dead)
		out = append(out, l)
	}
	return out
}

// eta is the time the slowest account-region needs at its buckets' rates (run); for a
// worker without a plan, the queue's count at the summed rates of the account-regions
// seen. "-" when unknown, "0s" when nothing is left.
func (p *workProgress) eta(scopes []*tally) string {
	if p.rate == nil {
		return "-"
	}
	if !p.planned {
		var r float64
		for _, t := range scopes {
			r += p.rate(t.account, t.region, rateActions[0])
		}
		switch {
		case p.queued == 0:
			return "0s"
		case p.queued < 0 || r <= 0:
			return "-"
		}
		return clockText(time.Duration(float64(p.queued) / r * float64(time.Second)))
	}
	var worst time.Duration
	for _, t := range scopes {
		d, ok := t.eta(p.rate)
		if !ok {
			return "-"
		}
		worst = max(worst, d)
	}
	return clockText(worst)
}

// clockText is d rounded to the second, as 1h02m03s, 2m03s or 3s.
func clockText(d time.Duration) string {
	d = d.Round(time.Second)
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	s = strings.Replace(s, "h0m", "h", 1)
	return s
}

// startWorkProgress starts the display of run or work --idle-exit when stderr is a
// terminal (never on a pipe or a file); nil otherwise. Call it before setup, so that the
// logs go through the display.
func (g *globals) startWorkProgress(name string) *workProgress {
	if !isTerminal(g.stderr) {
		return nil
	}
	p := newWorkProgress(name, nil)
	g.display = newDisplay(g.stderr, displayEvery, p.lines)
	return p
}

// endProgress draws the display's final state and stops it (before the result is printed).
func (g *globals) endProgress() {
	if g.display != nil {
		g.display.Close()
	}
}

// useLimits takes the ETA's rates from lim's buckets (their current, adapted rates).
func (p *workProgress) useLimits(lim *limit.Limiter) {
	if p == nil || lim == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = func(account, region, action string) float64 {
		cur, _ := lim.Rate(account, region, action)
		return cur
	}
}

// chain returns an Observe that counts for p and then calls next (nil: none).
func (p *workProgress) chain(next func(worker.Observation)) func(worker.Observation) {
	if p == nil {
		return next
	}
	return func(o worker.Observation) {
		p.observe(o)
		if next != nil {
			next(o)
		}
	}
}

// queuePoll is how often the display reads the queue's count.
const queuePoll = time.Second

// poll reads q's count of messages left every queuePoll until the returned stop is called.
func (p *workProgress) poll(ctx context.Context, q queue.Queue) (stop func()) {
	if p == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(queuePoll)
		defer t.Stop()
		for {
			if st, err := q.Stats(ctx); err == nil {
				p.setQueued(st.Total())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// replayProgress is what the display of dlq replay shows: moved, skipped and failed of
// the dead letters there were, and an ETA at the rate so far.
type replayProgress struct {
	start time.Time
	mu    sync.Mutex
	total int // dead letters when the replay began; -1 unknown
	res   queue.ReplayResult
}

// startReplayProgress starts the display of dlq replay when stderr is a terminal; nil
// otherwise.
func (g *globals) startReplayProgress() *replayProgress {
	if !isTerminal(g.stderr) {
		return nil
	}
	p := &replayProgress{start: time.Now(), total: -1}
	g.display = newDisplay(g.stderr, displayEvery, p.lines)
	return p
}

// count reads the dead letters there are to replay.
func (p *replayProgress) count(ctx context.Context, dlq queue.Queue) {
	if p == nil {
		return
	}
	st, err := dlq.Stats(ctx)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = st.Total()
}

// updater records the counts so far (queue.ReplayOptions' Progress); nil for a nil p.
func (p *replayProgress) updater() func(queue.ReplayResult) {
	if p == nil {
		return nil
	}
	return func(r queue.ReplayResult) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.res = r
	}
}

func (p *replayProgress) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, took := p.res, time.Since(p.start)
	seen := r.Moved + r.Skipped + r.Failed
	of, eta := "", "-"
	if p.total >= 0 {
		of = fmt.Sprintf(" of %d", p.total)
		switch left := p.total - seen; {
		case left <= 0:
			eta = "0s"
		case seen > 0:
			eta = clockText(time.Duration(float64(took) / float64(seen) * float64(left)))
		}
	}
	return []string{fmt.Sprintf("dlq replay: %d moved, %d skipped, %d failed%s · %s · ETA %s",
		r.Moved, r.Skipped, r.Failed, of, clockText(took), eta)}
}
