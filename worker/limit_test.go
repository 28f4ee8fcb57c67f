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

// TestDeferralDuringBurst: a bucket with tokens to spare starts more jobs than the
// worker has room to hold; those it defers come back as soon as the slots could take
// them (by the time a job takes, guessed at 100 ms before the first ends), not a refill
// period later (16 s behind the 16 held at 1 token/s): all 40 jobs of one account-region
// are done within a few seconds with one slot and room for 16.
func TestDeferralDuringBurst(t *testing.T) {
	t.Parallel()
	lim := limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 100, PerSecond: 1}, "DescribeSnapshots": {Burst: 100, PerSecond: 1}})
	q := newFakeQueue()
	for i := range 40 {
		q.add(0, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", plannedAt)))
	}
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
	st := runFor(t, w, 5*time.Second)
	if st.Created != 40 || st.Deferred == 0 {
		t.Errorf("stats %+v, want 40 created (some deferred first) within 5s", st)
	}
	_, _, _, vis := q.state()
	for _, v := range vis {
		if v.d > 5*time.Second {
			t.Errorf("%s deferred for %s with the bucket's burst to spare", v.id, v.d)
		}
	}
}

// TestDeferralsSpreadLinearly: deferred jobs are spread one job's time apart, the k-th
// about k jobs' time ahead: with 300 ms jobs, one slot and 60 jobs received at once no
// deferral is much longer than the 18 s they take, however the estimates of bucket and
// slots compound. (A running worker no longer receives what its full line would defer,
// receivable: the jobs are handed to the runner's hold directly.)
func TestDeferralsSpreadLinearly(t *testing.T) {
	t.Parallel()
	lim := limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 1000, PerSecond: 5}, "DescribeSnapshots": {Burst: 1000, PerSecond: 20}})
	q := newFakeQueue()
	for i := range 60 {
		q.add(0, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", plannedAt)))
	}
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return Result{Action: Created}, nil }))
	w.Limiter = lim
	w.Concurrency = 1
	r, err := w.newRunner(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.stopJob()
	r.backlog.avgJob = 300 * time.Millisecond // the worker knows how long a job takes
	for {
		msgs, err := q.Receive(context.Background(), 10, 0)
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
	for _, line := range r.backlog.lines {
		for _, h := range line {
			h.stop()
		}
	}
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
