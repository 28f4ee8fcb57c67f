package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// TestRateWaitSnoozes: a call whose rate-limit wait would exceed the bound comes back as a
// snooze of ¾ to all of that wait (back a little before its token), after one try.
func TestRateWaitSnoozes(t *testing.T) {
	t.Parallel()
	s := &snapshots{backoff: defaultBackoff}
	n := 0
	err := s.call(context.Background(), func(context.Context) error {
		n++
		return fmt.Errorf("operation error EC2: CreateSnapshot: %w", &limit.WaitError{Account: testAccount, Region: testRegion, Action: "CreateSnapshot", Delay: 3 * time.Second})
	})
	var sn *SnoozeError
	if n != 1 || !errors.As(err, &sn) || sn.Delay < 2250*time.Millisecond || sn.Delay > 3*time.Second {
		t.Fatalf("%d calls, error %v; want one call and a snooze of 2.25s to 3s", n, err)
	}
}

// TestFairnessAcrossAccountRegions: with one slot, the jobs of an account-region whose
// bucket is empty do not hold the slot until it refills: they are snoozed back to the
// queue at once, and the other account-region's job runs.
func TestFairnessAcrossAccountRegions(t *testing.T) {
	t.Parallel()
	const busy, quiet = "111111111111", "222222222222"
	lim := limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 1, PerSecond: 0.01}})
	q := newFakeQueue()
	var bodies [][]byte
	for i, account := range []string{busy, busy, busy, quiet} {
		j := createJob(fmt.Sprintf("vol-0000000000000000%d", i), "default", plannedAt)
		j.Account = account
		j.Key = job.CreateKey(account, testRegion, j.Volume, j.Policy, plannedAt)
		bodies = append(bodies, encode(t, j))
	}
	ids := q.add(0, bodies...)
	var mu sync.Mutex
	var done []string
	s := &snapshots{backoff: defaultBackoff}
	w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		err := s.call(ctx, func(ctx context.Context) error { return lim.Wait(ctx, j.Account, j.Region, "CreateSnapshot") })
		if err != nil {
			return Result{}, err
		}
		mu.Lock()
		done = append(done, j.Account)
		mu.Unlock()
		return Result{Action: Created}, nil
	}))
	w.Concurrency = 1
	w.Visibility = 2 * time.Second // a job may wait 500ms for a token
	w.ExitWhenDrained = false
	start := time.Now()
	st := runFor(t, w, 1500*time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("run took %v", took)
	}
	slices.Sort(done)
	if !slices.Equal(done, []string{busy, quiet}) {
		t.Errorf("done %v, want one job of the busy account (its one token) and the quiet account's", done)
	}
	if st.Created != 2 || st.Retried != 2 {
		t.Errorf("stats %+v, want 2 created and 2 snoozed", st)
	}
	_, _, dead, vis := q.state()
	if len(dead) != 0 {
		t.Errorf("dead letters %v", dead)
	}
	var snoozed []string
	for _, v := range vis {
		if v.d >= 70*time.Second {
			snoozed = append(snoozed, v.id)
		}
	}
	if slices.Sort(snoozed); !slices.Equal(snoozed, ids[1:3]) && !slices.Equal(snoozed, []string{ids[0], ids[2]}) && !slices.Equal(snoozed, ids[:2]) {
		t.Errorf("snoozed %v (visibility calls %+v), want two of the busy account's %v for about the bucket's 100s", snoozed, vis, ids[:3])
	}
}

// TestSnoozeIsNotBackedOff: a snoozed job — paced by the worker's own rate limiter, or
// throttled by AWS — comes back after the snooze's delay, however many times it was
// received: the attempts' backoff (80 s at the 5th receive) is for failures. Throttling is
// backed off by the limiter, which halves the account-region's rate.
func TestSnoozeIsNotBackedOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"paced", Snooze(3*time.Second, &limit.WaitError{Account: testAccount, Region: testRegion, Action: "CreateSnapshot", Delay: 3 * time.Second}), 3 * time.Second, 3 * time.Second},
		{"throttled by AWS", Snooze(3*time.Second, apiError("RequestLimitExceeded")), 3 * time.Second, 3 * time.Second},
		{"failed", errors.New("connection reset"), 80 * time.Second, 100 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue()
			q.add(4, encode(t, createJob("vol-00000000000000001", "default", plannedAt)))
			w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return Result{}, tc.err }))
			w.ExitWhenDrained = false
			runFor(t, w, 500*time.Millisecond)
			_, _, dead, vis := q.state()
			if len(dead) != 0 || len(vis) == 0 || vis[0].d < tc.min || vis[0].d > tc.max {
				t.Errorf("visibility calls %+v, dead letters %v; want the message hidden %s to %s", vis, dead, tc.min, tc.max)
			}
		})
	}
}

// TestAdmission: with the worker holding the rate limiter, a job takes a slot only when
// its tokens are reserved. One slot, a busy account-region whose create bucket holds two
// tokens and refills every 10 s, queued ahead of a quiet one: the quiet jobs run at once,
// no job waits in its slot for a token or is snoozed, and the busy account-region's jobs
// beyond what its bucket can start soon are deferred to the queue, spread at its rate.
func TestAdmission(t *testing.T) {
	t.Parallel()
	const busy, quiet = "111111111111", "222222222222"
	lim := limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 2, PerSecond: 0.1}, "DescribeSnapshots": {Burst: 100, PerSecond: 20}})
	q := newFakeQueue()
	var busyIDs []string
	for i, account := range []string{busy, busy, busy, busy, busy, busy, quiet, quiet} {
		j := createJob(fmt.Sprintf("vol-0000000000000000%d", i), "default", plannedAt)
		j.Account = account
		j.Key = job.CreateKey(account, testRegion, j.Volume, j.Policy, plannedAt)
		ids := q.add(0, encode(t, j))
		if account == busy {
			busyIDs = append(busyIDs, ids...)
		}
	}
	var mu sync.Mutex
	var done []string
	var waited time.Duration
	w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		began := time.Now()
		for _, a := range []string{"DescribeSnapshots", "CreateSnapshot"} {
			if err := lim.Wait(ctx, j.Account, j.Region, a); err != nil {
				return Result{}, err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		done = append(done, j.Account)
		waited = max(waited, time.Since(began))
		return Result{Action: Created}, nil
	}))
	w.Limiter = lim
	w.Concurrency = 1
	w.ExitWhenDrained = false
	st := runFor(t, w, time.Second)

	slices.Sort(done)
	if !slices.Equal(done, []string{busy, busy, quiet, quiet}) {
		t.Errorf("done %v, want the busy account's two tokens and both quiet jobs", done)
	}
	if waited > 200*time.Millisecond {
		t.Errorf("a job waited %s in its slot for tokens", waited)
	}
	if st.Retried != 0 || st.Created != 4 || st.Deferred < 3 {
		t.Errorf("stats %+v, want 4 created, none snoozed, at least 3 deferred", st)
	}
	_, _, dead, vis := q.state()
	if len(dead) != 0 {
		t.Errorf("dead letters %v", dead)
	}
	var delays []time.Duration
	for _, v := range vis {
		if v.d > 0 {
			if !slices.Contains(busyIDs, v.id) {
				t.Errorf("%s deferred for %s: not the busy account's", v.id, v.d)
			}
			delays = append(delays, v.d)
		}
	}
	slices.Sort(delays)
	for i := 1; i < len(delays); i++ {
		if delays[i]-delays[i-1] < 9*time.Second {
			t.Errorf("deferrals %v: not spread at the bucket's 10s per token", delays)
			break
		}
	}
}

// TestDeferralDuringBurst: a bucket with tokens to spare and more jobs received than the
// worker has room to hold: those it defers come back as soon as the slots could take
// them (by the time a job takes, guessed at 100 ms before the first ends), not a refill
// period later (16 s behind the 16 held at 1 token/s). Run end to end, all 40 jobs of one
// account-region are done within a few seconds with one slot.
func TestDeferralDuringBurst(t *testing.T) {
	t.Parallel()
	buckets := map[string]limit.Bucket{"CreateSnapshot": {Burst: 100, PerSecond: 1}, "DescribeSnapshots": {Burst: 100, PerSecond: 1}}
	t.Run("held", func(t *testing.T) {
		t.Parallel()
		q := queueOf(t, 40)
		w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return Result{Action: Created}, nil }))
		w.Limiter = limit.New(buckets)
		w.Concurrency = 1
		r := holdAll(t, w, q, 0, false)
		if st := r.stats; st.Deferred == 0 {
			t.Fatalf("stats %+v, want some of the 40 deferred", st)
		}
		_, _, _, vis := q.state()
		for _, v := range vis {
			if v.d > 5*time.Second {
				t.Errorf("%s deferred for %s with the bucket's burst to spare", v.id, v.d)
			}
		}
	})
	t.Run("run", func(t *testing.T) {
		t.Parallel()
		lim := limit.New(buckets)
		q := queueOf(t, 40)
		w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
			for _, a := range []string{"DescribeSnapshots", "CreateSnapshot"} {
				if err := lim.Wait(ctx, j.Account, j.Region, a); err != nil {
					return Result{}, err
				}
			}
			return Result{Action: Created}, nil
		}))
		w.Limiter = lim
		w.Concurrency = 1
		w.ExitWhenDrained = true
		if st := runFor(t, w, 5*time.Second); st.Created != 40 {
			t.Errorf("stats %+v, want 40 created within 5s", st)
		}
		_, _, _, vis := q.state()
		for _, v := range vis {
			if v.d > 5*time.Second {
				t.Errorf("%s deferred for %s with the bucket's burst to spare", v.id, v.d)
			}
		}
	})
}

// TestReceivedNotDeferred: what receive pacing lets the runner receive (receivable), its
// lines hold: a worker that asks only for what it can hold defers nothing back to the
// queue, which would cost a ChangeMessageVisibility and a receive for no work. (hold once
// counted the scope it holds as one more, halving a lone scope's line against what
// receivable had asked for: CI saw 0 to 30 of 40 jobs deferred run to run.)
func TestReceivedNotDeferred(t *testing.T) {
	t.Parallel()
	for _, avg := range []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, time.Second} {
		q := queueOf(t, 60)
		w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return Result{Action: Created}, nil }))
		w.Limiter = limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 100, PerSecond: 1}})
		w.Concurrency = 2
		r := holdAll(t, w, q, avg, true)
		if r.stats.Deferred != 0 || r.heldCount() == 0 {
			t.Errorf("average job %s: %d held, %d deferred; want what was received held", avg, r.heldCount(), r.stats.Deferred)
		}
	}
}

// queueOf is a fake queue of n create jobs of one account-region.
func queueOf(t *testing.T, n int) *fakeQueue {
	q := newFakeQueue()
	for i := range n {
		q.add(0, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", plannedAt)))
	}
	return q
}

// holdAll receives q's messages into a new runner of w that dispatches nothing and knows
// a job takes avg (0: its guess), a batch at a time, at most what receive pacing allows
// (receivable) when paced, and holds each, until the queue gives none (or, paced, the
// lines are full); it waits for the deferrals it made and returns the runner.
func holdAll(t *testing.T, w *Worker, q *fakeQueue, avg time.Duration, paced bool) *runner {
	t.Helper()
	r, err := w.newRunner(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stopJob)
	r.backlog.avgJob = avg
	for {
		n := maxBatch
		if paced {
			r.mu.Lock()
			n = min(n, r.receivable())
			r.mu.Unlock()
		}
		if n == 0 {
			break
		}
		msgs, err := q.Receive(context.Background(), n, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			r.room <- struct{}{}
			r.hold(m)
		}
	}
	r.wg.Wait() // the deferrals
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, line := range r.backlog.lines {
		for _, h := range line {
			h.stop()
		}
	}
	return r
}

// TestDeferralsSpreadLinearly: deferred jobs are spread one job's time apart, the k-th
// about k jobs' time ahead: with 300 ms jobs, one slot and 60 jobs received at once no
// deferral is much longer than the 18 s they take, however the estimates of bucket and
// slots compound. (A running worker no longer receives what its full line would defer,
// receivable: the jobs are handed to the runner's hold directly.)
func TestDeferralsSpreadLinearly(t *testing.T) {
	t.Parallel()
	q := queueOf(t, 60)
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return Result{Action: Created}, nil }))
	w.Limiter = limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 1000, PerSecond: 5}, "DescribeSnapshots": {Burst: 1000, PerSecond: 20}})
	w.Concurrency = 1
	r := holdAll(t, w, q, 300*time.Millisecond, false) // the worker knows how long a job takes
	_, _, _, vis := q.state()
	if st := r.stats; st.Deferred < 20 {
		t.Fatalf("stats %+v, want most of the 60 deferred", st)
	}
	for _, v := range vis {
		if v.d > 25*time.Second {
			t.Errorf("%s deferred for %s", v.id, v.d)
		}
	}
}
