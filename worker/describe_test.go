package worker

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
)

// TestDescribePerJob: a rate-limited worker with many jobs of one account-region, its
// buckets full (nothing makes it wait), makes at most one Describe call per job on
// average through moto: the job-tag lookups of creates (before and after the create) and
// the volume listings of deletes gather in batches (lookupWindow) although no token is
// short; each delete's share check stays its own call. Alone, each job would make two.
// Every create still makes its one snapshot, every delete its one delete.
func TestDescribePerJob(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	const n = 8
	var bodies [][]byte
	var creates, expired, fresh []string
	for range n {
		vol := e.volume(t)
		j := createJob(vol, "default", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
		creates = append(creates, j.Key)
		bodies = append(bodies, encode(t, j))
		fresh = append(fresh, e.managed(t, vol, "default", 0))
		old := e.managed(t, vol, "default", 45*24*time.Hour)
		expired = append(expired, old)
		d := deleteJob(old, "default")
		d.Volume = vol
		bodies = append(bodies, encode(t, d))
	}
	var mu sync.Mutex
	calls := map[string]int{}
	e.faults.setFail(func(op string, _ any, _ int) error {
		mu.Lock()
		defer mu.Unlock()
		calls[op]++
		return nil
	})
	q := newFakeQueue()
	q.add(0, bodies...)
	w := e.newWorker(q, config.Default(), time.Now)
	// AWS's buckets (DESIGN.md §8), all full.
	w.Limiter = limit.New(map[string]limit.Bucket{
		"CreateSnapshot": {Burst: 100, PerSecond: 5}, "DeleteSnapshot": {Burst: 100, PerSecond: 5},
		"DescribeSnapshots": {Burst: 100, PerSecond: 20}, "DescribeSnapshotAttribute": {Burst: 100, PerSecond: 20},
	})
	st := runFor(t, w, 30*time.Second)
	if want := (Stats{Processed: 2 * n, Created: n, Deleted: n}); st != want {
		t.Fatalf("stats %+v, want %+v (reasons %v)", st, want, q.deadReasons())
	}
	for i, key := range creates {
		if got := e.byJob(t, key); len(got) != 1 {
			t.Errorf("job %s has %d snapshots, want 1", key, len(got))
		}
		if e.exists(t, expired[i]) || !e.exists(t, fresh[i]) {
			t.Errorf("volume %d: want %s deleted and %s kept", i, expired[i], fresh[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	describe := 0
	for op, c := range calls {
		if strings.HasPrefix(op, "Describe") {
			describe += c
		}
	}
	if calls["DescribeSnapshotAttribute"] != n {
		t.Errorf("%d share checks for %d deletes, want one each", calls["DescribeSnapshotAttribute"], n)
	}
	if per := float64(describe) / (2 * n); per > 1 {
		t.Errorf("%.2f Describe calls per job (%v), want at most 1", per, calls)
	}
}
