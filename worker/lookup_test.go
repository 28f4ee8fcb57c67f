package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/limit"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// pacedEC2 waits on lim before each Describe call, as cloud.Clients' middleware does.
type pacedEC2 struct {
	EC2
	lim *limit.Limiter
}

func (p pacedEC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	if err := p.lim.Wait(ctx, testAccount, testRegion, "DescribeSnapshots"); err != nil {
		return nil, err
	}
	return p.EC2.DescribeSnapshots(ctx, in, o...)
}

func (p pacedEC2) DescribeSnapshotAttribute(ctx context.Context, in *ec2.DescribeSnapshotAttributeInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	if err := p.lim.Wait(ctx, testAccount, testRegion, "DescribeSnapshotAttribute"); err != nil {
		return nil, err
	}
	return p.EC2.DescribeSnapshotAttribute(ctx, in, o...)
}

// TestLookupsCoalesce: with the Describe bucket short, the job-tag lookups of creates and
// the volume listings of deletes in one account-region share DescribeSnapshots calls
// (through moto, which answers filters of many values), and every job still gets its
// own answer: each create makes its volume's one snapshot, each delete deletes its
// expired snapshot and keeps the fresh one.
func TestLookupsCoalesce(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	const n = 6
	var bodies [][]byte
	var creates []string
	var expired, fresh []string
	for range n {
		vol := e.volume(t)
		j := createJob(vol, "default", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
		creates = append(creates, j.Key)
		bodies = append(bodies, encode(t, j))
	}
	for range n / 2 {
		vol := e.volume(t)
		fresh = append(fresh, e.managed(t, vol, "default", 0))
		old := e.managed(t, vol, "default", 45*24*time.Hour)
		expired = append(expired, old)
		d := deleteJob(old, "default")
		d.Volume = vol
		bodies = append(bodies, encode(t, d))
	}
	var mu sync.Mutex
	values := map[string][]int{} // filter name → values per call
	e.faults.setFail(func(op string, params any, _ int) error {
		if in, ok := params.(*ec2.DescribeSnapshotsInput); ok {
			mu.Lock()
			for _, f := range in.Filters {
				if name := aws.ToString(f.Name); name == "tag:"+tag.Job || name == "tag:"+tag.Volume {
					values[name] = append(values[name], len(f.Values))
				}
			}
			mu.Unlock()
		}
		return nil
	})
	// Two Describe calls a second, the next one in 500 ms.
	lim := limit.New(map[string]limit.Bucket{"DescribeSnapshots": {Burst: 1, PerSecond: 2}})
	if err := lim.Wait(context.Background(), testAccount, testRegion, "DescribeSnapshots"); err != nil {
		t.Fatal(err)
	}
	q := newFakeQueue()
	q.add(0, bodies...)
	w := e.newWorker(q, config.Default(), time.Now)
	w.EC2 = func(string, string) EC2 { return pacedEC2{EC2: e.worker, lim: lim} }
	w.Concurrency = 2 * n
	// The lookups wait on lim, but the jobs are not admitted by it (Worker.Limiter unset):
	// they all start at once, so that which of them meet in a batch does not depend on
	// when admission spaced them out.
	w.handler = (&snapshots{cfg: w.Config, ec2: w.EC2, now: time.Now, backoff: *w.backoff, lim: lim}).mux()
	st := runFor(t, w, 30*time.Second)
	if want := (Stats{Processed: n + n/2, Created: n, Deleted: n / 2}); st != want {
		t.Fatalf("stats %+v, want %+v (reasons %v)", st, want, q.deadReasons())
	}
	for _, key := range creates {
		if got := e.byJob(t, key); len(got) != 1 {
			t.Errorf("job %s has %d snapshots, want 1", key, len(got))
		}
	}
	for i := range expired {
		if e.exists(t, expired[i]) || !e.exists(t, fresh[i]) {
			t.Errorf("volume %d: expired %s exists %v, fresh %s exists %v; want deleted and kept",
				i, expired[i], e.exists(t, expired[i]), fresh[i], e.exists(t, fresh[i]))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Alone, each create looks twice (before and after it creates) and each delete lists
	// once: 2n and n/2 calls.
	if byJob := values["tag:"+tag.Job]; len(byJob) == 0 || len(byJob) > n || slices.Max(byJob) < 2 {
		t.Errorf("job-tag lookups: %d calls with %v values; want at most %d, some of several values", len(byJob), byJob, n)
	}
	if byVol := values["tag:"+tag.Volume]; len(byVol) == 0 || len(byVol) >= n/2 || slices.Max(byVol) < 2 {
		t.Errorf("volume listings: %d calls with %v values; want fewer than %d", len(byVol), byVol, n/2)
	}
}

// TestLookupBatches: lookups that wait for one token share a call of at most
// maxLookupValues values, each gets the snapshots of its own value; when the job that
// was to make a batch's call is stopped first, the others of the batch ask again and are
// answered.
func TestLookupBatches(t *testing.T) {
	t.Parallel()
	lim := limit.New(map[string]limit.Bucket{"DescribeSnapshots": {Burst: 1, PerSecond: 4}})
	fake := &fakeEC2{byValue: true}
	api := pacedEC2{EC2: fake, lim: lim}
	s := &snapshots{lim: lim, backoff: defaultBackoff}
	if err := lim.Wait(context.Background(), testAccount, testRegion, "DescribeSnapshots"); err != nil {
		t.Fatal(err)
	}

	// The first lookup leads; its job is stopped while it waits for the token.
	stopped, stop := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := s.lookup(stopped, api, testAccount, testRegion, nil, "tag:"+tag.Job, "k-leader")
		leaderErr <- err
	}()
	for !s.lookups.isOpen() {
		time.Sleep(time.Millisecond)
	}
	const n = 2*maxLookupValues + 1
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%d", i)
			got, err := s.lookup(context.Background(), api, testAccount, testRegion, nil, "tag:"+tag.Job, key)
			if err == nil && !slices.ContainsFunc(got, func(sn types.Snapshot) bool { return aws.ToString(sn.SnapshotId) == "snap-"+key }) {
				err = fmt.Errorf("lookup of %s: its snapshot is not among the %d listed", key, len(got))
			}
			errs[i] = err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	stop()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("stopped leader: %v, want its cancellation", err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	total := 0
	for _, v := range fake.values {
		total += v
		if v > maxLookupValues {
			t.Errorf("a call carried %d values, more than %d", v, maxLookupValues)
		}
	}
	if len(fake.values) > 4 || total < n {
		t.Errorf("%d calls with %v values for %d lookups; want at most 4 calls covering all", len(fake.values), fake.values, n)
	}
}

// isOpen reports whether a batch is open (tests).
func (ls *lookups) isOpen() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.open) > 0
}
