package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// TestReceivePaced: a worker whose line of an account-region is full receives no more of
// the queue's messages than the line can take: the rest stay on the queue instead of
// being received and deferred back (a receive and a ChangeMessageVisibility each). With a
// bucket of 1 create a second and 30 jobs, it used to receive them all at once and defer
// about 25; now at most its first receive's (it holds nothing yet: up to 10).
func TestReceivePaced(t *testing.T) {
	t.Parallel()
	lim := limit.New(map[string]limit.Bucket{"CreateSnapshot": {Burst: 2, PerSecond: 1}})
	q := newFakeQueue()
	for i := range 30 {
		q.add(0, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", plannedAt)))
	}
	w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
		if err := lim.Wait(ctx, j.Account, j.Region, "CreateSnapshot"); err != nil {
			return Result{}, err
		}
		return Result{Action: Created}, nil
	}))
	w.Limiter = lim
	w.Concurrency = 1
	w.ExitWhenDrained = false
	st := runFor(t, w, 3*time.Second)
	if st.Created < 3 {
		t.Errorf("stats %+v, want the jobs the bucket allows in 3 s created", st)
	}
	if st.Deferred > maxBatch {
		t.Errorf("stats %+v: %d deferred, want the line's room received and hardly any deferred", st, st.Deferred)
	}
}
