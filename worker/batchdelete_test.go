package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"
)

// batchQueue records the size of every Delete call; the first fails when failFirst is
// set.
type batchQueue struct {
	*fakeQueue
	mu        sync.Mutex
	sizes     []int
	failFirst bool
}

func (q *batchQueue) Delete(ctx context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	q.sizes = append(q.sizes, len(msgs))
	fail := q.failFirst && len(q.sizes) == 1
	q.mu.Unlock()
	if fail {
		return errors.New("DeleteMessageBatch: injected failure")
	}
	return q.fakeQueue.Delete(ctx, msgs)
}

// TestDeletesBatched: the messages of jobs that finish close together are deleted in
// calls of up to 10 (DeleteMessageBatch), not one call each; when a batch's call fails,
// each of its messages is deleted alone, and none is left behind.
func TestDeletesBatched(t *testing.T) {
	t.Parallel()
	for _, failFirst := range []bool{false, true} {
		q := &batchQueue{fakeQueue: newFakeQueue(), failFirst: failFirst}
		const n = 12
		var bodies [][]byte
		for i := range n {
			bodies = append(bodies, encode(t, createJob(fmt.Sprintf("vol-%017x", i+1), "default", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))))
		}
		q.add(0, bodies...)
		release := make(chan struct{})
		var started sync.WaitGroup
		started.Add(n)
		w := testWorker(q, HandlerFunc(func(ctx context.Context, j job.Job) (Result, error) {
			started.Done()
			<-release // all finish together
			return Result{Action: Created}, nil
		}))
		w.Concurrency = n
		go func() { started.Wait(); close(release) }()
		st := runFor(t, w, 20*time.Second)
		left, deleted, _, _ := q.state()
		if st.Processed != n || left != 0 || len(deleted) != n {
			t.Fatalf("failFirst %v: processed %d, %d left, %d deleted; want %d, 0, %d", failFirst, st.Processed, left, len(deleted), n, n)
		}
		q.mu.Lock()
		sizes := q.sizes
		q.mu.Unlock()
		want := 2 // 10, then 2
		if failFirst {
			want = 1 + 10 + 2 // the failed 10 again, one by one; the last 2 together or not
		}
		if len(sizes) > want {
			t.Errorf("failFirst %v: %d Delete calls of sizes %v for %d messages, want at most %d", failFirst, len(sizes), sizes, n, want)
		}
	}
}
