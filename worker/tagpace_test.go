package worker

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// pacedBy makes a client wait on lim before every attempt of a call of the test's
// account-region, as cloud.Clients' middleware does.
func pacedBy(lim *limit.Limiter) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("testRateLimit",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if err := lim.Wait(ctx, testAccount, testRegion, awsmiddleware.GetOperationName(ctx)); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	}
}

// tagWorker is a worker on moto for the application-consistent policy, its EC2 and SSM
// calls paced by lim (also its admission's limiter), with calls counted in e.faults.
func (e *motoEnv) tagWorker(t *testing.T, q Queue, lim *limit.Limiter) *Worker {
	t.Helper()
	api := ec2.NewFromConfig(e.cfg, func(o *ec2.Options) { o.APIOptions = append(o.APIOptions, e.faults.apply, pacedBy(lim)) })
	sapi := ssm.NewFromConfig(e.cfg, func(o *ssm.Options) { o.APIOptions = append(o.APIOptions, pacedBy(lim)) })
	w := e.newWorker(q, policyConfig(t, appPolicy), func() time.Time { return time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC) })
	w.EC2 = func(string, string) EC2 { return api }
	w.SSM = func(string, string) SSM { return sapi }
	w.Limiter = lim
	return w
}

// queuedInstanceJob makes an instance with a data volume and returns its app-policy job,
// the one message of a new fake queue.
func (e *motoEnv) queuedInstanceJob(t *testing.T) (job.Job, *fakeQueue) {
	t.Helper()
	inst, _, _ := e.instanceWithData(t, 1)
	j := instanceJob(inst, "app", appPeriod)
	q := newFakeQueue()
	q.add(0, encode(t, j))
	return j, q
}

// checkVolumeTags fails t unless every snapshot of the job carries its own tags of
// DESIGN.md §4: its volume, its device, and a Name.
func (e *motoEnv) checkVolumeTags(t *testing.T, key string, want int) {
	t.Helper()
	snaps := e.byJob(t, key)
	if len(snaps) != want {
		t.Fatalf("%d snapshots carry %s, want %d", len(snaps), key, want)
	}
	for _, s := range snaps {
		tg := tagMap(s.Tags)
		if tg[tag.Volume] != aws.ToString(s.VolumeId) || tg[tag.Device] == "" || tg[tag.Name] == "" || tg[tag.Consistency] != tag.Application {
			t.Errorf("snapshot %s of %s: tags %v, want its volume, device, Name and consistency", aws.ToString(s.SnapshotId), aws.ToString(s.VolumeId), tg)
		}
	}
}

// TestInstanceTagsFreeSlot: with one slot and a CreateTags bucket far narrower than the
// CreateSnapshots one (2 tokens, then one every 8 s), a job whose CreateSnapshots has
// returned and that waits only for its tags' tokens — within the runner's max-wait —
// gives its slot back: an instance job that arrives while the second job waits for its
// tags is admitted and makes its CreateSnapshots at once, not 16 s later when those tags
// are written. The waiting job's message is not acked meanwhile. (The admission does not
// reserve CreateTags either: the third job would wait for them there.)
func TestInstanceTagsFreeSlot(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	lim := limit.New(map[string]limit.Bucket{"CreateTags": {Burst: 2, PerSecond: 1.0 / 8}, "CreateSnapshots": {Burst: 100, PerSecond: 5}})
	var bodies [][]byte
	for range 3 {
		inst, _, _ := e.instanceWithData(t, 1)
		bodies = append(bodies, encode(t, instanceJob(inst, "app", appPeriod)))
	}
	q := newFakeQueue()
	q.add(0, bodies[:2]...)
	w := e.tagWorker(t, q, lim)
	w.Concurrency = 1
	w.ExitWhenDrained = false
	w.Visibility = 2 * time.Minute // max-wait 30 s: the tag waits (8 to 16 s) are within it
	stop := runInBackground(t, w)
	wait := func(op string, n int, d time.Duration) bool {
		for deadline := time.Now().Add(d); e.faults.count(op) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
		}
		return true
	}
	// One job's tags are written (the bucket's 2 tokens): the other now waits 8 and 16 s
	// for its own.
	if !wait("CreateTags", 2, 10*time.Second) || !wait("CreateSnapshots", 2, time.Second) {
		stop()
		t.Fatalf("CreateSnapshots %d, CreateTags %d: the first jobs did not run", e.faults.count("CreateSnapshots"), e.faults.count("CreateTags"))
	}
	q.add(0, bodies[2])
	ok := wait("CreateSnapshots", 3, 6*time.Second)
	st := stop()
	if !ok {
		t.Errorf("the third job made no CreateSnapshots within 6 s: tagging held the slot")
	}
	if st.Created != 1 || st.Retried != 0 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want one job done, the others released (not acked) while tagging", st)
	}
	if left, deleted, dead, _ := q.state(); left != 2 || len(deleted) != 1 || len(dead) != 0 {
		t.Errorf("queue: %d left, %d deleted, %d dead; want the two jobs still tagging kept", left, len(deleted), len(dead))
	}
}

// TestInstanceTagsOutwaitMaxWait: tags due later than the runner's max-wait (a quarter
// of the visibility timeout, here 500 ms; CreateTags 1 token, then one a second) are
// waited for after the effect — the message heart-beaten meanwhile — rather than
// snoozed: every snapshot ends with its own tags, in one attempt per job and one
// CreateTags per snapshot (no retry that would look the snapshots up to repair them).
func TestInstanceTagsOutwaitMaxWait(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	lim := limit.New(map[string]limit.Bucket{"CreateTags": {Burst: 1, PerSecond: 1}, "CreateSnapshots": {Burst: 100, PerSecond: 5}})
	q := newFakeQueue()
	var keys []string
	for range 2 {
		inst, _, _ := e.instanceWithData(t, 1)
		j := instanceJob(inst, "app", appPeriod)
		keys = append(keys, j.Key)
		q.add(0, encode(t, j))
	}
	w := e.tagWorker(t, q, lim)
	w.Visibility = 2 * time.Second
	st := runFor(t, w, 10*time.Second)
	if st != (Stats{Processed: 2, Created: 2}) {
		t.Errorf("stats %+v, want 2 created in one attempt each", st)
	}
	if n, c := e.faults.count("CreateTags"), e.faults.count("CreateSnapshots"); n != 4 || c != 2 {
		t.Errorf("CreateTags %d, CreateSnapshots %d; want 4 and 2", n, c)
	}
	for _, k := range keys {
		e.checkVolumeTags(t, k, 2)
	}
}

// TestInstanceTagsAfterStop: a worker stopped while a job waits for its tags' tokens
// (after CreateSnapshots) does not ack its message: it is released, and the retry finds
// the snapshots by their job tag and writes their tags, without a second
// CreateSnapshots.
func TestInstanceTagsAfterStop(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	j, q := e.queuedInstanceJob(t)
	slow := limit.New(map[string]limit.Bucket{"CreateTags": {Burst: 1, PerSecond: 1.0 / 60}})
	w := e.tagWorker(t, q, slow)
	stop := runInBackground(t, w)
	deadline := time.Now().Add(8 * time.Second)
	for e.faults.count("CreateSnapshots") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The worker is stopped: its job waits 60 s for a tag token.
	if st := stop(); st.Created != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v: the job ended while its tags were not written", st)
	}
	if left, deleted, _, _ := q.state(); left != 1 || len(deleted) != 0 {
		t.Fatalf("queue: %d left, %v deleted; want the message kept", left, deleted)
	}

	w = e.tagWorker(t, q, limit.New(map[string]limit.Bucket{}))
	if st := runFor(t, w, 10*time.Second); st != (Stats{Processed: 1}) {
		t.Errorf("retry: stats %+v, want one processed (existed)", st)
	}
	if n := e.faults.count("CreateSnapshots"); n != 1 {
		t.Errorf("CreateSnapshots %d times, want 1", n)
	}
	e.checkVolumeTags(t, j.Key, 2)
}

// TestInstanceTagsThrottled: CreateTags throttled by AWS through all of a call's
// in-process retries is paced again after the effect (round after round, without the
// slot), not snoozed: the job ends in one attempt with every snapshot tagged.
func TestInstanceTagsThrottled(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	j, q := e.queuedInstanceJob(t)
	w := e.tagWorker(t, q, limit.New(map[string]limit.Bucket{"CreateTags": {Burst: 10, PerSecond: 10}}))
	tries := int(w.backoff.Tries) + 1 // a call and its in-process retries
	e.faults.setFail(func(op string, _ any, n int) error {
		if op == "CreateTags" && n <= tries {
			return apiError("RequestLimitExceeded")
		}
		return nil
	})
	if st := runFor(t, w, 10*time.Second); st != (Stats{Processed: 1, Created: 1}) {
		t.Errorf("stats %+v, want one attempt, created", st)
	}
	if n := e.faults.count("CreateTags"); n != tries+2 {
		t.Errorf("CreateTags %d times, want %d throttled and 2", n, tries)
	}
	e.checkVolumeTags(t, j.Key, 2)
}
