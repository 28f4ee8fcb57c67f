package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// raceHold orders two workers' calls for each job key into the interleaving of issue 12:
// worker 0 creates only after worker 1's first look for the key (so worker 1 finds
// nothing and creates too), and worker 1 creates only after worker 0's second look (its
// look after its create, which therefore sees worker 0's snapshot alone).
type raceHold struct {
	keyOf map[string]string // volume → key
	mu    sync.Mutex
	looks [2]map[string]int
	done  map[[3]any]chan struct{} // (worker, key, look) → closed when that look returned
}

func newRaceHold(keyOf map[string]string) *raceHold {
	return &raceHold{keyOf: keyOf, looks: [2]map[string]int{{}, {}}, done: map[[3]any]chan struct{}{}}
}

// after is closed once worker w's n-th look for key returned.
func (h *raceHold) after(w int, key string, n int) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [3]any{w, key, n}
	if h.done[k] == nil {
		h.done[k] = make(chan struct{})
	}
	return h.done[k]
}

// apply is worker w's middleware.
func (h *raceHold) apply(w int) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("snapfleetTestRace",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				switch p := in.Parameters.(type) {
				case *ec2.CreateSnapshotInput:
					key := h.keyOf[aws.ToString(p.VolumeId)]
					wait := h.after(1, key, 1)
					if w == 1 {
						wait = h.after(0, key, 2)
					}
					select {
					case <-wait:
					case <-ctx.Done():
						return middleware.InitializeOutput{}, middleware.Metadata{}, ctx.Err()
					}
				case *ec2.DescribeSnapshotsInput:
					out, md, err := next.HandleInitialize(ctx, in)
					if err == nil && awsmiddleware.GetOperationName(ctx) == "DescribeSnapshots" {
						for _, f := range p.Filters {
							if aws.ToString(f.Name) != "tag:"+tag.Job {
								continue
							}
							for _, key := range f.Values {
								h.mu.Lock()
								h.looks[w][key]++
								n := h.looks[w][key]
								h.mu.Unlock()
								close(h.after(w, key, n))
							}
						}
					}
					return out, md, err
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

// TestCreateRaceTwoWorkers is issue 12's race, made deterministic: two workers, each on
// its own queue holding the same create jobs, on the embedded queue and on SQS (moto).
// For every key worker 0 creates and looks again before worker 1 creates, and worker 1
// looked before worker 0 created: worker 0 keeps its snapshot, worker 1 sees both, and
// must leave exactly one, whichever id is smaller. The EC2 endpoint is a moto_server of
// the test's own with its clock stopped, so that both snapshots of a key have the same
// StartTime, as two creates in one second have on moto (whole seconds). Before the keeper
// rule, worker 1 then kept its own whenever its id was the smaller (half the keys) and
// both stayed.
func TestCreateRaceTwoWorkers(t *testing.T) {
	t.Parallel()
	const keys = 12
	s := mototest.Start(t)
	cfg := s.AWSConfig(t)
	m := &motoServer{s: s, cfg: cfg, setup: ec2.NewFromConfig(cfg)}
	s.StopClock(t, time.Now().Truncate(time.Second))
	for _, backend := range []string{"embedded", "sqs-standard"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := m.env()
			cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d}\n")
			period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return period.Add(time.Hour) }
			keyOf := map[string]string{}
			var jobs []job.Job
			for range keys {
				j := createJob(e.volume(t), "daily", period)
				keyOf[j.Volume] = j.Key
				jobs = append(jobs, j)
			}
			hold := newRaceHold(keyOf)
			var wg sync.WaitGroup
			stats := make([]Stats, 2)
			for w := range 2 {
				q := openBackend(t, backend, 5, 0)
				for _, j := range jobs {
					sendJob(t, q, j)
				}
				client := ec2.NewFromConfig(e.cfg, func(o *ec2.Options) {
					o.APIOptions = append(o.APIOptions, e.faults.apply, hold.apply(w))
				})
				wk := e.newWorker(q, cfg, clock)
				wk.EC2 = func(string, string) EC2 { return client }
				// Every job of the key set at once: a worker that held back a job until the
				// other took it would wait on a job the other could not take.
				wk.Concurrency = keys
				wg.Add(1)
				go func() {
					defer wg.Done()
					stats[w] = runFor(t, wk, time.Minute)
				}()
			}
			wg.Wait()
			for w, st := range stats {
				if st.Processed != keys || st.DeadLettered != 0 || st.Retried != 0 {
					t.Errorf("worker %d: stats %+v, want %d jobs processed, none retried or dead-lettered", w, st, keys)
				}
			}
			for _, j := range jobs {
				if left := e.byJob(t, j.Key); len(left) != 1 {
					var ids []string
					for _, sn := range left {
						ids = append(ids, aws.ToString(sn.SnapshotId)+" "+aws.ToTime(sn.StartTime).Format(time.RFC3339Nano))
					}
					t.Errorf("key %s: %d snapshots %v, want 1", j.Key, len(left), ids)
				}
			}
			if n := e.faults.count("DeleteSnapshot"); n != keys {
				t.Errorf("%d DeleteSnapshot calls, want %d (one duplicate per key)", n, keys)
			}
		})
	}
}

// TestDeleteDuplicate: a delete job marked duplicate (as the planner sends for all but a
// key's keeper) removes a duplicate creation that retention keeps (the newest of its
// volume), because the worker's own listing of the key finds the keeper; the same job
// naming the keeper is refused, and so is the duplicate without the mark (retention
// decides then) and a duplicate that is shared (protections hold). Each case uses a key
// of its own, so the ids decide which snapshot is the keeper.
func TestDeleteDuplicate(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d, min_keep: 2}\n")
	// pair makes two snapshots of one key, as two racing workers do, keeper first.
	pair := func() (keeper, dup string) {
		j := createJob(e.volume(t), "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
		a, b := e.made(t, j), e.made(t, j)
		return min(a, b), max(a, b)
	}
	marked := func(id string, vol string) job.Job {
		j := deleteJob(id, "daily")
		j.Volume, j.Duplicate = vol, true
		return j
	}
	volumeOf := func(id string) string {
		out, err := e.setup.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil {
			t.Fatalf("reading %s: %v", id, err)
		}
		return aws.ToString(out.Snapshots[0].VolumeId)
	}

	keeper, dup := pair()
	vol := volumeOf(dup)
	st, q, ids := e.run(t, cfg, time.Now, 10*time.Second,
		encode(t, marked(keeper, vol)), encode(t, deleteJob(dup, "daily")))
	if want := (Stats{Processed: 2, DeadLettered: 2}); st != want || !e.exists(t, keeper) || !e.exists(t, dup) {
		t.Fatalf("keeper marked duplicate, duplicate unmarked: stats %+v, want %+v and both kept", st, want)
	}
	for _, id := range ids {
		if got := q.deadReasons()[id]; got != reason.RefusedRetention {
			t.Errorf("reason %q, want %s", got, reason.RefusedRetention)
		}
	}
	st, _, _ = e.run(t, cfg, time.Now, 10*time.Second, encode(t, marked(dup, vol)))
	if want := (Stats{Processed: 1, Deleted: 1}); st != want || e.exists(t, dup) || !e.exists(t, keeper) {
		t.Errorf("duplicate marked: stats %+v, want %+v, the duplicate gone and the keeper kept", st, want)
	}

	keeper, dup = pair()
	e.fleet(t).Share(context.Background(), dup, "111122223333")
	st, _, _ = e.run(t, cfg, time.Now, 10*time.Second, encode(t, marked(dup, volumeOf(dup))))
	if want := (Stats{Processed: 1, Skipped: 1}); st != want || !e.exists(t, dup) || !e.exists(t, keeper) {
		t.Errorf("shared duplicate marked: stats %+v, want %+v and both kept", st, want)
	}
}

// TestDuplicateDoesNotCount: a duplicate creation of a job key does not count toward the
// volume's retention, as the planner does not count it: with min_keep 2, a keeper, its
// duplicate and a 40-day-old snapshot, a forged delete of the old one is refused — it is
// the second of the two the floor keeps once the duplicate is gone.
func TestDuplicateDoesNotCount(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, "policies:\n  - name: daily\n    retain: {max_age: 30d, min_keep: 2}\n")
	vol := e.volume(t)
	old := e.managed(t, vol, "daily", 40*24*time.Hour)
	j := createJob(vol, "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	keeper, dup := e.made(t, j), e.made(t, j)
	st, q, ids := e.run(t, cfg, time.Now, 10*time.Second, encode(t, deleteJob(old, "daily")))
	if want := (Stats{Processed: 1, DeadLettered: 1}); st != want || !e.exists(t, old) {
		t.Fatalf("forged delete of the old snapshot beside a duplicate: stats %+v, want %+v and the old snapshot kept", st, want)
	}
	if got := q.deadReasons()[ids[0]]; got != reason.RefusedRetention {
		t.Errorf("reason %q, want %s", got, reason.RefusedRetention)
	}
	if !e.exists(t, keeper) || !e.exists(t, dup) {
		t.Errorf("the keeper %s or the duplicate %s went", keeper, dup)
	}
}
