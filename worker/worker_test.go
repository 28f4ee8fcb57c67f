package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/testbed/logbuf"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
)

var plannedAt = time.Date(2026, 11, 22, 1, 0, 3, 0, time.UTC)

func createJob(volume, policy string, period time.Time) job.Job {
	return job.Job{
		V: 1, Kind: job.KindCreate,
		Key:     job.CreateKey(testAccount, testRegion, volume, policy, period),
		Account: testAccount, Region: testRegion, Policy: policy,
		Volume: volume, Instance: "i-0123456789abcdef0", Device: "/dev/xvda",
		Run: "run-test", PlannedAt: plannedAt,
	}
}

func deleteJob(snapshot, policy string) job.Job {
	return job.Job{
		V: 1, Kind: job.KindDelete,
		Key:     job.DeleteKey(testAccount, testRegion, snapshot),
		Account: testAccount, Region: testRegion, Policy: policy,
		Snapshot: snapshot, Run: "run-test", PlannedAt: plannedAt,
	}
}

func knownAll(context.Context, string) (bool, error) { return true, nil }

// noEC2 fails the test if the worker ever asks for an EC2 client.
func noEC2(t *testing.T) func(string, string) EC2 {
	return func(a, r string) EC2 {
		t.Errorf("EC2 client for %s/%s requested; no AWS call was expected", a, r)
		return nil
	}
}

// testWorker returns a worker on q with fast test settings and handler h.
func testWorker(q Queue, h Handler) *Worker {
	return &Worker{
		Queue:           q,
		Config:          config.Default(),
		KnownAccount:    knownAll,
		handler:         h,
		Concurrency:     4,
		ExitWhenDrained: true,
		drainPoll:       50 * time.Millisecond,
		ShutdownGrace:   time.Second,
	}
}

// runFor runs w until it returns or limit passes (then its context is cancelled).
func runFor(t *testing.T, w *Worker, limit time.Duration) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	st, err := w.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st
}

// runInBackground runs w until stop is called, which returns its stats.
func runInBackground(t *testing.T, w *Worker) (stop func() Stats) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats, 1)
	go func() {
		st, err := w.Run(ctx)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- st
	}()
	return func() Stats { cancel(); return <-done }
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		want   outcome
		reason string
		delay  time.Duration
	}{
		{"nil", nil, outSuccess, "", 0},
		{"permanent", Permanent("refused_x", errors.New("no")), outDeadLetter, "refused_x", 0},
		{"wrapped permanent", fmt.Errorf("doing: %w", Permanent("r", nil)), outDeadLetter, "r", 0},
		{"skip", Skip(reason.VolumeGone), outSkip, reason.VolumeGone, 0},
		{"wrapped skip", fmt.Errorf("x: %w", skipErr(reason.InUse, errors.New("ami"))), outSkip, reason.InUse, 0},
		{"snooze", Snooze(17*time.Second, errors.New("slow down")), outSnooze, "", 17 * time.Second},
		{"plain", errors.New("boom"), outRetry, "", 0},
		{"context", context.Canceled, outRetry, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, reason, delay := outcomeOf(tt.err)
			if o != tt.want || reason != tt.reason || delay != tt.delay {
				t.Errorf("outcomeOf(%v) = %s, %q, %s; want %s, %q, %s", tt.err, o, reason, delay, tt.want, tt.reason, tt.delay)
			}
		})
	}
}

// TestRouting runs one message through Run per handler outcome and checks what became of
// it on the queue and in the stats.
func TestRouting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		attempts   int
		maxReceive int
		result     Result
		err        error
		stats      Stats
		deleted    bool
		dead       string
		minVis     time.Duration
		wantVisOp  bool
	}{
		{name: "created", result: Result{Action: Created, Snapshot: "snap-0123456789abcdef0"},
			stats: Stats{Processed: 1, Created: 1}, deleted: true},
		{name: "existed", result: Result{Action: Existed, Snapshot: "snap-0123456789abcdef0"},
			stats: Stats{Processed: 1}, deleted: true},
		{name: "deleted", result: Result{Action: Deleted}, stats: Stats{Processed: 1, Deleted: 1}, deleted: true},
		{name: "gone", result: Result{Action: Gone}, stats: Stats{Processed: 1}, deleted: true},
		{name: "skip", err: Skip(reason.VolumeGone), stats: Stats{Processed: 1, Skipped: 1}, deleted: true},
		{name: "permanent", err: Permanent(reason.RefusedRetention, errors.New("kept")),
			stats: Stats{Processed: 1, DeadLettered: 1}, dead: reason.RefusedRetention},
		{name: "snooze", err: Snooze(20*time.Second, errors.New("throttled")),
			stats: Stats{Processed: 1, Retried: 1}, minVis: 20 * time.Second, wantVisOp: true},
		{name: "snooze at attempt 1000 is never dead-lettered", attempts: 999, err: Snooze(20*time.Second, errors.New("throttled")),
			stats: Stats{Processed: 1, Retried: 1}, minVis: 20 * time.Second, wantVisOp: true},
		{name: "retryable", err: errors.New("something odd"),
			stats: Stats{Processed: 1, Retried: 1}, minVis: retryBase, wantVisOp: true},
		{name: "retry backs off with attempts", attempts: 3, err: errors.New("something odd"),
			stats: Stats{Processed: 1, Retried: 1}, minVis: 8 * retryBase, wantVisOp: true},
		{name: "retry on the last receive but one", attempts: 3, maxReceive: 5, err: errors.New("something odd"),
			stats: Stats{Processed: 1, Retried: 1}, minVis: 8 * retryBase, wantVisOp: true},
		{name: "retry on the last receive is dead-lettered", attempts: 4, maxReceive: 5, err: errors.New("something odd"),
			stats: Stats{Processed: 1, DeadLettered: 1}, dead: reason.ExhaustedRetries},
		{name: "permanent on the last receive keeps its reason", attempts: 4, maxReceive: 5, err: Permanent(reason.AccessDenied, errors.New("no")),
			stats: Stats{Processed: 1, DeadLettered: 1}, dead: reason.AccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newFakeQueue()
			q.maxReceive = tt.maxReceive
			ids := q.add(tt.attempts, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
			w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) { return tt.result, tt.err }))
			w.ExitWhenDrained = false
			w.IdleExit = 100 * time.Millisecond
			st := runFor(t, w, 5*time.Second)
			if st != tt.stats {
				t.Errorf("stats = %+v, want %+v", st, tt.stats)
			}
			_, deleted, dead, vis := q.state()
			if got := len(deleted) == 1 && deleted[0] == ids[0]; got != tt.deleted {
				t.Errorf("deleted = %v, want deleted %v", deleted, tt.deleted)
			}
			if tt.dead == "" && len(dead) > 0 {
				t.Errorf("dead-lettered %+v, want none", dead)
			}
			if tt.dead != "" && (len(dead) != 1 || dead[0].reason != tt.dead || dead[0].lastErr == "") {
				t.Errorf("dead letters = %+v, want one with reason %s and an error", dead, tt.dead)
			}
			if tt.wantVisOp {
				if len(vis) != 1 || vis[0].d < tt.minVis || vis[0].d > retryCap*2 {
					t.Errorf("visibility calls = %+v, want one of at least %s", vis, tt.minVis)
				}
			} else if len(vis) != 0 {
				t.Errorf("visibility calls = %+v, want none", vis)
			}
		})
	}
}

// TestRejectedBeforeAnyAWSCall: messages that can never succeed are dead-lettered at once
// with their reason and no EC2 client is even asked for.
func TestRejectedBeforeAnyAWSCall(t *testing.T) {
	t.Parallel()
	valid := createJob("vol-0123456789abcdef0", "default", plannedAt)
	otherAccount := valid
	otherAccount.Account = "222222222222"
	otherAccount.Key = job.CreateKey("222222222222", testRegion, valid.Volume, "default", plannedAt)
	unknownPolicy := createJob("vol-0123456789abcdef0", "nightly", plannedAt)
	unknownPolicyDelete := deleteJob("snap-0123456789abcdef0", "nightly")
	tests := []struct {
		name   string
		body   []byte
		reason string
	}{
		{"not json", []byte("rm -rf /"), reason.InvalidMessage},
		{"empty", []byte{}, reason.InvalidMessage},
		{"unknown field", []byte(`{"v":1,"kind":"snapshot.delete","force":true}`), reason.InvalidMessage},
		{"unknown version", []byte(`{"v":2,"kind":"snapshot.create","key":"k","account":"123456789012","region":"us-east-1","policy":"default","volume":"vol-0123456789abcdef0","run":"r","planned_at":"2026-11-22T01:00:03Z"}`), reason.InvalidMessage},
		{"create without instance", bytes.Replace(encode(t, valid), []byte(`"instance":"i-0123456789abcdef0",`), nil, 1), reason.InvalidMessage},
		{"create without device", bytes.Replace(encode(t, valid), []byte(`"device":"/dev/xvda",`), nil, 1), reason.InvalidMessage},
		{"unknown account", encode(t, otherAccount), reason.UnknownAccount},
		{"unknown policy create", encode(t, unknownPolicy), reason.UnknownPolicy},
		{"unknown policy delete", encode(t, unknownPolicyDelete), reason.UnknownPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if bytes.Equal(tt.body, encode(t, valid)) {
				t.Fatal("test bug: the body is the valid job")
			}
			q := newFakeQueue()
			ids := q.add(0, tt.body)
			w := &Worker{
				Queue:  q,
				Config: config.Default(),
				EC2:    noEC2(t),
				KnownAccount: func(_ context.Context, a string) (bool, error) {
					return a == testAccount, nil
				},
				ExitWhenDrained: true,
				drainPoll:       50 * time.Millisecond,
			}
			st := runFor(t, w, 5*time.Second)
			if want := (Stats{Processed: 1, DeadLettered: 1}); st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			if got := q.deadReasons()[ids[0]]; got != tt.reason {
				t.Errorf("dead-letter reason = %q, want %q", got, tt.reason)
			}
		})
	}
}

// TestPanicIsAFailedAttempt: a panicking handler costs one attempt of its message; the
// worker goes on with the others.
func TestPanicIsAFailedAttempt(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	bad := createJob("vol-0000000000000bad0", "default", plannedAt)
	good := createJob("vol-00000000000000001", "default", plannedAt)
	ids := q.add(0, encode(t, bad), encode(t, good), encode(t, createJob("vol-00000000000000002", "default", plannedAt)))
	w := testWorker(q, HandlerFunc(func(_ context.Context, j job.Job) (Result, error) {
		if j.Volume == bad.Volume {
			var m map[string]int
			m["boom"]++ // nil map write: a runtime panic
		}
		return Result{Action: Created}, nil
	}))
	w.Concurrency = 1
	w.ExitWhenDrained = false
	w.IdleExit = 200 * time.Millisecond
	st := runFor(t, w, 5*time.Second)
	if want := (Stats{Processed: 3, Created: 2, Retried: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	left, deleted, dead, vis := q.state()
	if left != 1 || len(deleted) != 2 || len(dead) != 0 {
		t.Errorf("left %d, deleted %v, dead %v; want the panicking message back on the queue", left, deleted, dead)
	}
	if len(vis) != 1 || vis[0].id != ids[0] || vis[0].d < retryBase {
		t.Errorf("visibility calls = %+v, want %s released with backoff", vis, ids[0])
	}
}

// TestConcurrencyBound: never more jobs at once than Concurrency, however many messages
// are received and held for admission, and never a receive of more than SQS's batch.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	for i := range 20 {
		q.add(0, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", plannedAt)))
	}
	var running, peak atomic.Int32
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return Result{Action: Created}, nil
	}))
	w.Concurrency = 3
	st := runFor(t, w, 10*time.Second)
	if st.Created != 20 || st.Processed != 20 {
		t.Errorf("stats = %+v, want 20 created", st)
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency = %d, want 3", p)
	}
	if q.maxAsked > maxBatch {
		t.Errorf("received up to %d at once", q.maxAsked)
	}
}

// TestHeartbeat: a job running longer than Visibility/2 has its message's visibility
// extended, so no other worker receives it meanwhile.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.visibility = 100 * time.Millisecond
	ids := q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	var calls atomic.Int32
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		calls.Add(1)
		time.Sleep(400 * time.Millisecond)
		return Result{Action: Created}, nil
	}))
	w.Visibility = 100 * time.Millisecond
	st := runFor(t, w, 5*time.Second)
	if st.Created != 1 || calls.Load() != 1 {
		t.Errorf("stats %+v, handler calls %d; want one job done once", st, calls.Load())
	}
	_, _, _, vis := q.state()
	if len(vis) < 3 {
		t.Fatalf("visibility extended %d times in 400ms at 100ms, want at least 3", len(vis))
	}
	for _, v := range vis {
		if v.id != ids[0] || v.d != 100*time.Millisecond {
			t.Errorf("heartbeat %+v, want %s extended by 100ms", v, ids[0])
		}
	}
}

// TestHeartbeatRealQueues: on the embedded queue and SQS (moto), with a visibility timeout
// of 2 s, a job that runs 5 s keeps its message: a second consumer polling the queue all
// the while receives nothing, and the job is done once.
func TestHeartbeatRealQueues(t *testing.T) {
	t.Parallel()
	const vis, runs = 2 * time.Second, 5 * time.Second
	for _, backend := range []string{"embedded", "sqs-standard"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			q, o := openBackendOptions(t, backend, 5, vis)
			other, err := queue.Open(ctx, q.URL(), o)
			if err != nil {
				t.Fatalf("opening a second handle on %s: %v", q.URL(), err)
			}
			defer other.Close()
			sendJob(t, q, createJob("vol-0123456789abcdef0", "default", plannedAt))
			var calls atomic.Int32
			started := make(chan struct{})
			w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
				if calls.Add(1) == 1 {
					close(started)
				}
				time.Sleep(runs)
				return Result{Action: Created}, nil
			}))
			w.Visibility = vis
			w.Concurrency = 1
			type result struct {
				st  Stats
				err error
			}
			done := make(chan result, 1)
			go func() {
				st, err := w.Run(ctx)
				done <- result{st, err}
			}()
			select {
			case <-started:
			case <-ctx.Done():
				t.Fatal("the job never started")
			}
			began := time.Now()
			var stolen []queue.Message
			for time.Since(began) < runs-500*time.Millisecond {
				ms, err := other.Receive(ctx, 10, 500*time.Millisecond)
				if err != nil {
					t.Fatalf("second consumer: %v", err)
				}
				stolen = append(stolen, ms...)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("Run: %v", r.err)
			}
			if len(stolen) != 0 {
				t.Errorf("the second consumer received %d messages (attempts %d) while the job ran: its visibility was not extended", len(stolen), stolen[0].Attempts)
			}
			if want := (Stats{Processed: 1, Created: 1}); r.st != want || calls.Load() != 1 {
				t.Errorf("stats %+v after %d handler calls, want %+v after one", r.st, calls.Load(), want)
			}
			if s, err := q.Stats(ctx); err != nil || s.Total() != 0 {
				t.Errorf("%s holds %+v (%v), want nothing", q.URL(), s, err)
			}
		})
	}
}

// TestShutdown: on cancellation the worker stops receiving, hands back the messages it
// held but had not started, lets jobs that finish within the grace period settle,
// releases those that do not with visibility 0, and returns nil.
func TestShutdown(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	quick := createJob("vol-00000000000000001", "default", plannedAt)
	slow := createJob("vol-00000000000000002", "default", plannedAt)
	ids := q.add(0, encode(t, quick), encode(t, slow))
	extra := q.add(0, encode(t, createJob("vol-00000000000000003", "default", plannedAt)))
	var started sync.WaitGroup
	started.Add(2)
	w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		started.Done()
		if j.Volume == quick.Volume {
			time.Sleep(100 * time.Millisecond) // finishes within the grace period
			return Result{Action: Created}, nil
		}
		<-ctx.Done() // would run forever: cancelled when the grace runs out
		return Result{}, fmt.Errorf("creating snapshot of %s: %w", j.Volume, ctx.Err())
	}))
	w.Concurrency = 2
	w.ExitWhenDrained = false
	w.ShutdownGrace = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	// Cancelled once both jobs run and the third message is held: a runner that has not
	// seen a job end receives no more than its slots at first (slotsCanStart), so the
	// third comes in a second receive.
	go func() {
		started.Wait()
		deadline := time.Now().Add(10 * time.Second) // then the assertions below fail
		for st, _ := q.Stats(ctx); st.Visible > 0 && time.Now().Before(deadline); st, _ = q.Stats(ctx) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	begin := time.Now()
	st, err := w.Run(ctx)
	if err != nil {
		t.Fatalf("Run after cancellation: %v, want nil", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("Run took %s to shut down with a 300ms grace", took)
	}
	if want := (Stats{Processed: 1, Created: 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	left, deleted, dead, vis := q.state()
	if len(deleted) != 1 || deleted[0] != ids[0] || len(dead) != 0 {
		t.Errorf("deleted %v dead %v, want only %s deleted", deleted, dead, ids[0])
	}
	slices.SortFunc(vis, func(a, b visCall) int { return strings.Compare(a.id, b.id) })
	if want := []visCall{{ids[1], 0}, {extra[0], 0}}; !slices.Equal(vis, want) {
		t.Errorf("visibility calls = %+v, want %+v: the stuck job's and the held one's released with 0", vis, want)
	}
	if left != 2 {
		t.Errorf("%d messages left, want 2 (the released ones)", left)
	}
	if n, _ := q.Stats(context.Background()); n.Visible != 2 {
		t.Errorf("queue stats after shutdown %+v, want both visible at once", n)
	}
}

// TestIdleExit: with IdleExit the worker returns once the queue has been empty that long.
func TestIdleExit(t *testing.T) {
	t.Parallel()
	w := testWorker(newFakeQueue(), HandlerFunc(func(context.Context, job.Job) (Result, error) {
		return Result{}, errors.New("no job expected")
	}))
	w.ExitWhenDrained = false
	w.IdleExit = 300 * time.Millisecond
	begin := time.Now()
	st := runFor(t, w, 5*time.Second)
	took := time.Since(begin)
	if took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("Run returned after %s with IdleExit 300ms", took)
	}
	if st != (Stats{}) {
		t.Errorf("stats = %+v, want zero", st)
	}
}

// failsOnce is a handler whose first call fails (a retry) and every later one creates.
func failsOnce() Handler {
	var calls atomic.Int32
	return HandlerFunc(func(context.Context, job.Job) (Result, error) {
		if calls.Add(1) == 1 {
			return Result{}, errors.New("first try fails")
		}
		return Result{Action: Created}, nil
	})
}

// TestDrainWaitsForDelayed: ExitWhenDrained does not exit while a message is delayed.
func TestDrainWaitsForDelayed(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	w := testWorker(q, failsOnce())
	// A retried message is hidden for retryDelay(1) ≥ 5s: Run must still be waiting
	// when the test's limit cancels it.
	st := runFor(t, w, 1500*time.Millisecond)
	if want := (Stats{Processed: 1, Retried: 1}); st != want {
		t.Errorf("stats = %+v, want %+v (Run must not call a queue with a delayed message drained)", st, want)
	}
}

// miscountingQueue answers its first count with an empty queue, as SQS's approximate
// counts can when a message's hiding ends between the reads of its attributes.
type miscountingQueue struct {
	*fakeQueue
	counted atomic.Bool
}

func (q *miscountingQueue) Stats(ctx context.Context) (queue.Stats, error) {
	if !q.counted.Swap(true) {
		return queue.Stats{}, nil
	}
	return q.fakeQueue.Stats(ctx)
}

// TestDrainRecountsAnEmptyCount: one count that finds the queue empty while a retried
// message is hidden does not end the run; the message is received again and done.
func TestDrainRecountsAnEmptyCount(t *testing.T) {
	t.Parallel()
	q := &miscountingQueue{fakeQueue: newFakeQueue()}
	q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	w := testWorker(q, failsOnce())
	w.retryDelay = func(int) time.Duration { return 300 * time.Millisecond }
	st := runFor(t, w, 10*time.Second)
	if want := (Stats{Processed: 2, Created: 1, Retried: 1}); st != want || !q.counted.Load() {
		t.Errorf("stats = %+v (queue counted: %t), want %+v: one empty count must not end the run", st, q.counted.Load(), want)
	}
}

// TestIdleExitWaitsForDelayed: a message hidden for a back-off keeps the queue from being
// empty, so IdleExit does not strand it.
func TestIdleExitWaitsForDelayed(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	w := testWorker(q, failsOnce())
	w.ExitWhenDrained = false
	w.IdleExit = 200 * time.Millisecond
	begin := time.Now()
	st := runFor(t, w, 1500*time.Millisecond)
	if took := time.Since(begin); took < 1400*time.Millisecond {
		t.Errorf("Run idled out after %s with a delayed message in the queue", took)
	}
	if want := (Stats{Processed: 1, Retried: 1}); st != want {
		t.Errorf("stats = %+v, want %+v (Run must not idle out while a message is delayed)", st, want)
	}
	if n, _ := q.Stats(context.Background()); n.Total() != 1 {
		t.Errorf("queue holds %+v, want the delayed message", n)
	}
}

func TestMisconfiguredWorker(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	tests := []struct {
		name string
		w    Worker
	}{
		{"no queue", Worker{Config: config.Default(), KnownAccount: knownAll, EC2: noEC2(t)}},
		{"no config", Worker{Queue: q, KnownAccount: knownAll, EC2: noEC2(t)}},
		{"no account check", Worker{Queue: q, Config: config.Default(), EC2: noEC2(t)}},
		{"no ec2", Worker{Queue: q, Config: config.Default(), KnownAccount: knownAll}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.w.Run(context.Background()); err == nil {
				t.Error("Run succeeded, want an error")
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		attempts int
		min, max time.Duration
	}{
		{0, 5 * time.Second, 7 * time.Second},
		{1, 5 * time.Second, 7 * time.Second},
		{2, 10 * time.Second, 13 * time.Second},
		{5, 80 * time.Second, 100 * time.Second},
		{1000, retryCap, retryCap * 5 / 4},
	} {
		if d := retryDelay(tt.attempts); d < tt.min || d > tt.max {
			t.Errorf("retryDelay(%d) = %s, want in [%s, %s]", tt.attempts, d, tt.min, tt.max)
		}
	}
}

// TestShutdownAfterPoll: a running job's message is released at shutdown only once the
// last receive's wait is over at the queue. A long poll cancelled on our side goes on at
// SQS and would take the released message to nobody for a visibility timeout.
func TestShutdownAfterPoll(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	q.linger = true
	ids := q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	started := make(chan struct{})
	w := testWorker(q, HandlerFunc(func(ctx context.Context, _ job.Job) (Result, error) {
		close(started)
		<-ctx.Done()
		return Result{}, ctx.Err()
	}))
	w.ExitWhenDrained = false
	w.ShutdownGrace = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		time.Sleep(200 * time.Millisecond) // the next receive is waiting at the queue
		cancel()
	}()
	if _, err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // a lingering poll would have taken it by now
	q.mu.Lock()
	defer q.mu.Unlock()
	if m := q.msgs[0]; m.id != ids[0] || m.attempts != 1 || m.visibleAt.After(time.Now()) {
		t.Errorf("message %s after shutdown: %d receives, visible at %v: a cancelled poll took it after its release", m.id, m.attempts, m.visibleAt)
	}
}

// TestShutdownStuckJob: a job that ignores cancellation does not hold its message: after
// the grace and a short wait the worker releases it and returns; the job's late result
// touches the queue no more.
func TestShutdownStuckJob(t *testing.T) {
	t.Parallel()
	q := newFakeQueue()
	ids := q.add(0, encode(t, createJob("vol-0123456789abcdef0", "default", plannedAt)))
	started, unblock, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		defer close(returned)
		close(started)
		<-unblock // deaf to its context
		return Result{Action: Created}, nil
	}))
	w.ExitWhenDrained = false
	w.ShutdownGrace = 100 * time.Millisecond
	w.forceWait = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	st, err := w.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st != (Stats{}) {
		t.Errorf("stats = %+v, want zero", st)
	}
	_, _, _, vis := q.state()
	if len(vis) != 1 || vis[0] != (visCall{ids[0], 0}) {
		t.Errorf("visibility calls = %+v, want %s released with 0", vis, ids[0])
	}
	close(unblock)
	<-returned
	time.Sleep(50 * time.Millisecond) // let the late settle run, if it wrongly does
	left, deleted, dead, _ := q.state()
	if left != 1 || len(deleted) != 0 || len(dead) != 0 {
		t.Errorf("after the late result: left %d deleted %v dead %v; want the released message untouched", left, deleted, dead)
	}
}

// TestOutcomeLog: every outcome is logged with the job's fields and the queue message's
// id (message_id: zerolog's own message field is the human text); refusals at error
// level; no field is written twice.
func TestOutcomeLog(t *testing.T) {
	t.Parallel()
	var buf logbuf.Buffer
	q := newFakeQueue()
	j := deleteJob("snap-0123456789abcdef0", "default")
	ids := q.add(0, encode(t, j))
	w := testWorker(q, HandlerFunc(func(context.Context, job.Job) (Result, error) {
		return Result{}, Permanent(reason.RefusedUnmanaged, errors.New("no snapfleet:policy tag"))
	}))
	w.Log = zerolog.New(&buf)
	runFor(t, w, 5*time.Second)
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		ev := logLine(t, line)
		if ev["outcome"] == nil {
			continue
		}
		found = true
		want := map[string]any{
			"level": "error", "run": j.Run, "kind": j.Kind, "key": j.Key, "account": j.Account,
			"region": j.Region, "policy": j.Policy, "snapshot": j.Snapshot,
			"reason": reason.RefusedUnmanaged, "outcome": "dead_lettered",
			"message_id": ids[0], "message": "job dead_lettered",
		}
		for k, v := range want {
			if ev[k] != v {
				t.Errorf("log field %s = %v, want %v", k, ev[k], v)
			}
		}
	}
	if !found {
		t.Errorf("no outcome logged in %s", buf.String())
	}
}

// logLine decodes one JSON log line and fails on a key given twice, which
// encoding/json would silently resolve to the last one.
func logLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("log line %q is not JSON: %v", line, err)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k, _ := tok.(string)
		if seen[k] {
			t.Errorf("log line has field %q twice: %s", k, line)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ev
}
